"""Save a model with its MLflow flavor into a folder, and prove it can be served from there.

Serialization is a deliberate choice, recorded in the model's MLmodel file by MLflow:

- scikit-learn (and LightGBM's scikit-learn API) models are stored in skops's format, MLflow's
  safe default. skops refuses to load any type not on a trusted list; the list is derived from
  the model being logged (every type its file holds, `skops.io.get_untrusted_types`) and stored
  with it, so the model loads where it is served and a file swapped for one holding other types
  is refused.
- A model holding a class of user code (a custom transformer written in a recipe's step module)
  is stored with cloudpickle instead, its code pickled by value: skops stores classes by name,
  and recipe modules cannot be imported where the model is served. The same goes for custom
  `mlflow.pyfunc.PythonModel` classes (cloudpickle is MLflow's only format for them).
- `serialization: cloudpickle` in the tracker's stack config makes cloudpickle the format of
  every scikit-learn model; `serialization_format=` / `skops_trusted_types=` given to
  `log_model` (the flavor's own options) win over both.

Before returning, the saved folder is loaded in a process that cannot import the caller's code
and its input example is predicted (`stack_mlflow.servable`); a model that fails there, or has
no column signature an endpoint can validate requests against, is refused with the cause.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stack.errors import StackError
from stack_mlflow.servable import Verdict, check_servable
from stack_mlflow.user_code import pickled_by_value, user_modules

# framework name in mlstack -> MLflow flavor module
FLAVORS = {
    "sklearn": "mlflow.sklearn",
    "xgboost": "mlflow.xgboost",
    "lightgbm": "mlflow.lightgbm",
    "onnx": "mlflow.onnx",
    "pytorch": "mlflow.pytorch",
    "tensorflow": "mlflow.tensorflow",
    "python": "mlflow.pyfunc",
}
# what to install for a framework whose package is missing
INSTALL = {
    "xgboost": "mlstack-mlflow[xgboost]",
    "lightgbm": "mlstack-mlflow[lightgbm]",
    "onnx": "mlstack-mlflow[onnx]",
    "pytorch": "torch",
    "tensorflow": "tensorflow",
}
# modules a flavor loads its models with -> what provides them
RUNTIMES = {
    "sklearn": "scikit-learn",
    "skops": "skops",
    "xgboost": "mlstack-mlflow[xgboost]",
    "lightgbm": "mlstack-mlflow[lightgbm]",
    "onnx": "mlstack-mlflow[onnx]",
    "onnxruntime": "mlstack-mlflow[onnx]",
    "torch": "torch",
    "tensorflow": "tensorflow",
}
SERIALIZATIONS = ("skops", "cloudpickle")


class ModelNotServable(StackError):
    """A model that could not be saved, loaded back or asked for a prediction as it will be
    served; nothing was logged. The message names the model, the cause and the fix."""


def save_model(
    model: object,
    path: Path,
    *,
    framework: str,
    requirements: list[str],
    input_example: Any = None,
    serialization: str = "skops",
    options: Mapping[str, Any] | None = None,
    label: str = "the model",
) -> None:
    """Write `model` in MLflow's format under `path`, then prove it serves.

    `options` are the flavor's own `save_model` keywords, passed through (e.g.
    `pyfunc_predict_fn="predict_proba"`, `signature=`, `code_paths=`, `model_format=`).
    Requirements are never inferred: inference imports the model's code in a subprocess
    (seconds per model). Raises ModelNotServable naming `label`, the cause and the fix.
    """
    flavor_module = FLAVORS.get(framework)
    if flavor_module is None:
        raise StackError(
            f"framework {framework!r} is not supported by the MLflow adapter; "
            f"use one of {', '.join(sorted(FLAVORS))}"
        )
    if serialization not in SERIALIZATIONS:
        raise StackError(f"serialization {serialization!r}: use one of {SERIALIZATIONS}")
    try:
        flavor = importlib.import_module(flavor_module)
    except ImportError as exc:
        raise ModelNotServable(
            f"{label}: framework {framework!r} needs {exc.name or 'its package'}, which is not "
            f"installed: pip install '{INSTALL.get(framework, exc.name or framework)}'"
        ) from exc
    kwargs: dict[str, Any] = {"pip_requirements": requirements, **(options or {})}
    if input_example is not None:
        kwargs["input_example"] = input_example
    users = user_modules()
    if framework in ("sklearn", "lightgbm") and hasattr(model, "get_params"):
        # a script's or notebook's own classes live in __main__, which no server can import
        names = {m.__name__ for m in users} | {"__main__"}
        try:
            kwargs.update(_sklearn_format(model, serialization, kwargs, names))
        except ValueError as exc:
            raise ModelNotServable(f"{label}: {exc}") from exc
    if framework == "python" and "signature" not in kwargs and input_example is not None:
        # the columns alone: MLflow would otherwise infer the outputs by running the model's
        # own code in this process, before the check that runs it where a crash harms nothing
        kwargs["signature"] = _input_signature(input_example)
    try:
        with pickled_by_value(users):
            if framework == "python":
                flavor.save_model(str(path), python_model=model, **kwargs)
            else:
                flavor.save_model(model, str(path), **kwargs)
    except TypeError as exc:  # an option the flavor does not take
        raise ModelNotServable(f"{label}: {flavor_module}.save_model: {exc}") from exc
    except Exception as exc:
        raise ModelNotServable(
            f"{label}: {flavor_module} could not save it: {_with_causes(exc)}"
        ) from exc
    problem = signature_problem(path, input_example)
    untyped = problem is not None and input_example is not None and _untyped(input_example)
    if untyped:  # the cause, whatever predicting the example says
        raise ModelNotServable(f"{label}: {untyped}")
    if problem is not None and input_example is not None:
        _sign_inputs(path, input_example)  # flavors that infer none (ONNX, …) or failed to
        problem = signature_problem(path, input_example)
    verdict = check_servable(path)
    if not verdict.ok:
        raise ModelNotServable(_explain(label, framework, verdict))
    if problem:
        raise ModelNotServable(f"{label}: {problem}")


def _sklearn_format(
    model: object, serialization: str, given: Mapping[str, Any], users: set[str]
) -> dict[str, Any]:
    """serialization_format and skops_trusted_types for a scikit-learn-style model.

    Raises ValueError when `serialization_format="skops"` was asked for explicitly and the
    model holds user code skops cannot store where it is served (never switched silently to
    a format that runs code on load)."""
    explicit = "serialization_format" in given
    chosen = given.get("serialization_format", serialization)
    if chosen != "skops" or "skops_trusted_types" in given:
        return {"serialization_format": chosen}
    import skops.io

    try:
        types = skops.io.get_untrusted_types(data=skops.io.dumps(model))
        user_types = [t for t in types if t.rpartition(".")[0] in users]
    except Exception as exc:  # skops cannot store it (a lambda, a local class): by value
        user_types = [f"({type(exc).__name__}: {exc})"]
    if not user_types:
        return {"serialization_format": "skops", "skops_trusted_types": list(types)}
    if explicit:
        raise ValueError(
            f"serialization_format='skops' was asked for, but skops stores these by name and "
            f"they cannot be imported where the model is served: {', '.join(user_types)}; "
            "leave the option out to store this model with cloudpickle, your code inside it"
        )
    return {"serialization_format": "cloudpickle"}


def _input_signature(example: Any) -> Any:
    """An inputs-only signature of the example's columns (None when MLflow cannot type them:
    the checks after saving say which)."""
    from mlflow.models import ModelSignature, infer_signature

    try:
        return ModelSignature(inputs=infer_signature(example).inputs)
    except Exception:
        return None


def _with_causes(exc: BaseException) -> str:
    """The error and what caused it (MLflow wraps the real reason, e.g. what cannot be
    pickled, in a generic message)."""
    text = f"{type(exc).__name__}: {exc}"
    seen = {id(exc)}
    cause = exc.__cause__ or exc.__context__
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        text += f" (caused by {type(cause).__name__}: {cause})"
        cause = cause.__cause__ or cause.__context__
    return text


def _explain(label: str, framework: str, verdict: Verdict) -> str:
    where = "loaded" if verdict.stage == "load" else "asked to predict its input example"
    message = (
        f"{label} cannot be served: {where} in a fresh process of this environment (as the "
        f"server loads it), it failed with {verdict.error}"
    )
    missing = verdict.missing_module
    if missing and missing.partition(".")[0] in RUNTIMES:
        package = RUNTIMES[missing.partition(".")[0]]
        return message + f"\nfix: install it where models are served: pip install '{package}'"
    if missing:
        return message + (
            f"\nfix: the model refers to module {missing!r}, which is not importable where it "
            "is served. Code in the recipe's folder is stored with the model by value; for "
            "other code, install it as a package in the serving environment, or pass "
            f"code_paths=[...] to log_model (MLflow adds them to sys.path when it loads "
            f"{framework} models)"
        )
    if "python_function" in verdict.error and "flavor" in verdict.error:
        return message + (
            "\nfix: log an estimator that predicts (a Pipeline ending in one): a transformer "
            "alone cannot answer requests"
        )
    if verdict.stage == "predict":
        return message + (
            "\nfix: the input example must be rows the model can predict as they will arrive "
            "at the endpoint (the same columns and types)"
        )
    return message


def _sign_inputs(model_dir: Path, input_example: Any) -> None:
    """Write the input example's columns as the saved model's signature, when the flavor wrote
    none: ONNX's flavor infers nothing from an example, and scikit-learn's gives up when the
    model fails to predict it (the check that follows then says why)."""
    from mlflow.models import Model, ModelSignature, infer_signature

    try:
        inputs = infer_signature(input_example).inputs
    except Exception:
        return
    saved = Model.load(str(model_dir))
    saved.signature = ModelSignature(inputs=inputs)
    saved.save(str(model_dir / "MLmodel"))


def signature_problem(model_dir: Path, input_example: Any = None) -> str | None:
    """Why the saved model's signature cannot validate requests, or None when it can."""
    from mlflow.models import Model

    signature = Model.load(str(model_dir)).signature
    if signature is None or signature.inputs is None:
        if input_example is None:
            return (
                "no signature: give log_model an input_example (a few rows as the endpoint will "
                "receive them, as a pandas DataFrame) or signature=, so its endpoint can refuse "
                "bad input"
            )
        return "MLflow could not infer a signature from the input example: " + (
            _untyped(input_example)
            or "give it as a pandas DataFrame with named columns of numbers, booleans or strings"
        )
    names = json.loads(signature.inputs.to_json())
    if not all(isinstance(c, dict) and c.get("name") for c in names):
        return (
            "its signature has unnamed inputs (tensors); give the input example as a pandas "
            "DataFrame with named columns, which is what its endpoint validates requests by"
        )
    return None


def _untyped(example: Any) -> str | None:
    """The columns of an input example MLflow cannot type or check, and what to do.

    MLflow types a pandas nullable integer or boolean column holding a missing value as an
    optional long/boolean, then cannot enforce it (`cannot convert NA to integer`): an integer
    or boolean column has no missing value in its schema language."""
    from mlflow.models import infer_signature
    from mlflow.models.utils import _enforce_schema

    columns = list(getattr(example, "columns", []))
    repeated = sorted({str(c) for c in columns if columns.count(c) > 1})
    if repeated:
        return f"columns {', '.join(map(repr, repeated))} appear more than once; name each once"
    failing = []
    for column in columns:
        part = example[[column]]
        try:
            _enforce_schema(part, infer_signature(part).inputs)
        except Exception as exc:
            dtype = part[column].dtype
            failing.append(
                f"{column!r} ({dtype}: {str(exc).splitlines()[0]}): {_retype(str(dtype))}"
            )
    if failing:
        return f"columns MLflow cannot type or check: {'; '.join(failing)}"
    return None


def _retype(dtype: str) -> str:
    """What to do with an input example's column of pandas dtype `dtype` MLflow cannot type."""
    if dtype == "category":
        return (
            "requests carry strings: give it as str in the input example (.astype(str)) and "
            "encode the categories inside the model's pipeline"
        )
    if dtype in {"Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64"} or (
        dtype == "boolean"
    ):
        return (
            "an integer or boolean column with missing values has no MLflow type: cast it to "
            "float64 (NaN for missing) in the input example and in what the model is trained "
            "on, or fill the missing values"
        )
    return "use numbers, booleans or strings, or pass signature="
