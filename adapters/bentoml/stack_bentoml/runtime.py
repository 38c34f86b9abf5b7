"""A model version loaded in a serving worker: rows in column order in, a JSON list out.

A scikit-learn model is called natively on a numpy array: MLflow's pyfunc wrapper (a pandas
frame and schema enforcement per call) costs several times sklearn's own predict for one row,
and validation already happened on the request. Other flavors go through pyfunc. Either way
the columns are framed with the dtypes the signature names (frames.py).

A scikit-learn model answers with the method it was logged with: MLflow's flavor option
`pyfunc_predict_fn` (`mlflow.sklearn.log_model(..., pyfunc_predict_fn="predict_proba")`,
recorded as `predict_fn` of the `python_function` flavor in the MLmodel file). With
`predict_proba` the endpoint answers class probabilities, a list per row (in the order of
the model's `classes_`); the prediction log stores them as such.

Loaded as the champion (`probe=True`), a version is also asked what it takes in its
numeric columns (probe.py): its `bounds` narrow the endpoint's request schema.

Before it answers its first request, a version is called once on its saved input example
(`_ready`): a first call's costs (lazy imports, a model's weights read on first use, a
first connection to an LLM endpoint) would otherwise fall on a request, as a missed
challenger deadline or a latency outlier charged to the version. A traced version is warmed
through its untraced predict: the warm-up is no request, and leaves no trace."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stack.contract.registry import ModelSelector
from stack.contract.tracking import SERVED_VERSION
from stack_bentoml.spec import VersionSpec


@dataclass(frozen=True, slots=True)
class LoadedVersion:
    ref: str
    predict: Callable[[list[list[Any]]], list[Any]]
    #: numeric columns narrower than their type: name -> (lowest, highest) the model takes
    bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict)


#: The sklearn methods MLflow lets a model be logged with (`pyfunc_predict_fn`) that take
#: the features alone, and so can be called natively; any other goes through pyfunc.
NATIVE_PREDICT_FNS = frozenset(
    {"predict", "predict_proba", "predict_log_proba", "predict_joint_log_proba"}
)


def load_version(spec: VersionSpec, *, probe: bool = False) -> LoadedVersion:
    """The version ready to answer rows; with `probe`, its numeric bounds found as well."""
    from stack_bentoml.frames import Framer

    if not spec.model_dir or not Path(spec.model_dir).is_dir():
        spec = spec.model_copy(update={"model_dir": _stored_model_dir(spec.model_tag)})
    framer = Framer(spec.inputs)
    method = predict_fn(Path(spec.model_dir))
    if spec.flavor == "sklearn" and method in NATIVE_PREDICT_FNS:
        import mlflow.sklearn
        import numpy as np

        model = mlflow.sklearn.load_model(spec.model_dir)
        answer = getattr(model, method)
        # Fitted on a frame, sklearn warns on every numpy call; the columns are in order.
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        numeric = all(
            c.type in ("double", "float", "long", "integer") for c in spec.inputs
        ) and _takes_arrays(answer, framer, Path(spec.model_dir), [c.name for c in spec.inputs])

        def predict_sklearn(rows: list[list[Any]]) -> list[Any]:
            if numeric:  # one float64 array: what most estimators compute in anyway
                return _plain(answer(np.asarray(rows, dtype=float)))
            return _plain(answer(framer.frame(rows)))

        return LoadedVersion(spec.ref, predict_sklearn, _ready(spec, predict_sklearn, probe))

    import mlflow.pyfunc

    pyfunc = mlflow.pyfunc.load_model(spec.model_dir)

    def predict_pyfunc(rows: list[list[Any]]) -> list[Any]:
        groups = framer.groups(rows)
        if len(groups) == 1:
            return _plain(pyfunc.predict(groups[0][1]))
        answers: list[Any] = [None] * len(rows)
        for positions, frame in groups:
            answered = _plain(pyfunc.predict(frame))
            if len(answered) != len(positions):
                raise ValueError(
                    f"{spec.ref} answered {len(answered)} values for {len(positions)} rows"
                )
            for position, answer in zip(positions, answered, strict=True):
                answers[position] = answer
        return answers

    names = [c.name for c in spec.inputs]
    bounds = _ready(spec, predict_pyfunc, probe)  # untraced: neither call is a request
    if spec.traces is not None:
        return LoadedVersion(spec.ref, traced(spec, names, predict_pyfunc), bounds)
    return LoadedVersion(spec.ref, predict_pyfunc, bounds)


def _ready(
    spec: VersionSpec, predict: Callable[[list[list[Any]]], Any], probe: bool
) -> Mapping[str, tuple[float, float]]:
    """The version's numeric bounds with `probe` (probe.py; else none), after one call of
    `predict` on the model's saved input example, so that a first call's costs fall on the
    load, not on a request. No call when the model has no example; a failure here is the
    first request's to find (and report)."""
    from stack_bentoml.probe import example_row, probe_bounds

    row = example_row(Path(spec.model_dir), spec.inputs)
    if row is not None:
        with contextlib.suppress(Exception):
            predict([row])
    return probe_bounds(predict, spec.inputs, row, ref=spec.ref) if probe else {}


def _takes_arrays(
    answer: Callable[[Any], Any], framer: Any, model_dir: Path, names: list[str]
) -> bool:
    """Whether the model answers a bare float array as it answers the frame it was logged
    with, tried on its saved input example. A pipeline that selects columns by name (a
    ColumnTransformer, a transformer of one's own reading `X["amount"]`) needs the frame;
    a model logged without an example is given the frame too (safe, a little slower)."""
    import numpy as np
    from mlflow.models import Model

    try:
        example: Any = Model.load(str(model_dir)).load_input_example(str(model_dir))
        rows = example[names].to_numpy().tolist()
        by_frame = np.asarray(answer(framer.frame(rows)))
        by_array = np.asarray(answer(np.asarray(rows, dtype=float)))
    except Exception:
        return False
    return by_frame.shape == by_array.shape and bool(
        np.array_equal(by_frame, by_array) or np.allclose(by_frame, by_array, equal_nan=True)
    )


def predict_fn(model_dir: Path) -> str:
    """The method the model was logged to answer with (`predict` unless the flavor's
    `pyfunc_predict_fn` named another), read from its MLmodel file."""
    import yaml

    mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text()) or {}
    pyfunc_conf = (mlmodel.get("flavors") or {}).get("python_function") or {}
    return str(pyfunc_conf.get("predict_fn") or "predict")


def traced(
    spec: VersionSpec, names: list[str], predict: Callable[[list[list[Any]]], list[Any]]
) -> Callable[[list[list[Any]]], list[Any]]:
    """Each request a trace in the stack's tracking store: a root span with the rows and the
    answers, tagged with the version that answered; the app's own spans (retrieval,
    generation) nest under it. One version per process (challengers run in their own), so
    the process-wide experiment MLflow tracing writes to is this version's."""
    import mlflow

    sink = spec.traces
    assert sink is not None
    mlflow.set_tracking_uri(sink.tracking_uri)
    if mlflow.get_experiment_by_name(sink.experiment) is None:
        with contextlib.suppress(mlflow.exceptions.MlflowException):  # another worker won
            mlflow.create_experiment(sink.experiment, artifact_location=sink.artifact_location)
    mlflow.set_experiment(sink.experiment)
    model = ModelSelector.parse(spec.ref).model  # the endpoint file names it model@N
    tags = {SERVED_VERSION: spec.ref, "mlstack.model": model}

    def predict_traced(rows: list[list[Any]]) -> list[Any]:
        with mlflow.start_span(name=model, span_type="CHAIN", attributes=tags) as span:
            span.set_inputs({"rows": [dict(zip(names, row, strict=True)) for row in rows]})
            mlflow.update_current_trace(tags=tags)
            answers = predict(rows)
            span.set_outputs(answers)
            return answers

    return predict_traced


def _plain(result: Any) -> list[Any]:
    """numpy / pandas results as JSON-ready lists."""
    if hasattr(result, "tolist"):
        converted: list[Any] = result.tolist()
        return converted
    if hasattr(result, "to_dict"):
        return list(result.to_dict(orient="records"))
    return list(result)


def _stored_model_dir(tag: str) -> str:
    """Inside a bento (or on another machine) the model is found by its BentoML tag."""
    import bentoml

    return str(Path(bentoml.models.get(tag).path) / "mlflow")
