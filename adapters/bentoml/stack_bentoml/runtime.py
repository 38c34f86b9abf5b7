"""A model version loaded in a serving worker: rows in column order in, a JSON list out.

A scikit-learn model is called natively on a numpy array: MLflow's pyfunc wrapper (a pandas
frame and schema enforcement per call) costs several times sklearn's own predict for one row,
and validation already happened on the request. Other flavors go through pyfunc."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stack.contract.tracking import SERVED_VERSION
from stack_bentoml.spec import VersionSpec


@dataclass(frozen=True, slots=True)
class LoadedVersion:
    ref: str
    predict: Callable[[list[list[Any]]], list[Any]]


def load_version(spec: VersionSpec) -> LoadedVersion:
    names = [c.name for c in spec.inputs]
    if not spec.model_dir or not Path(spec.model_dir).is_dir():
        spec = spec.model_copy(update={"model_dir": _stored_model_dir(spec.model_tag)})
    if spec.flavor == "sklearn":
        import mlflow.sklearn
        import numpy as np

        model = mlflow.sklearn.load_model(spec.model_dir)
        # Fitted on a frame, sklearn warns on every numpy call; the columns are in order.
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        numeric = all(c.type in ("double", "float", "long", "integer") for c in spec.inputs)

        def predict_sklearn(rows: list[list[Any]]) -> list[Any]:
            if numeric:
                return _plain(model.predict(np.asarray(rows, dtype=float)))
            import pandas as pd

            return _plain(model.predict(pd.DataFrame(rows, columns=names)))

        return LoadedVersion(spec.ref, predict_sklearn)

    import mlflow.pyfunc
    import pandas as pd

    pyfunc = mlflow.pyfunc.load_model(spec.model_dir)

    def predict_pyfunc(rows: list[list[Any]]) -> list[Any]:
        return _plain(pyfunc.predict(pd.DataFrame(rows, columns=names)))

    if spec.traces is not None:
        return LoadedVersion(spec.ref, traced(spec, names, predict_pyfunc))
    return LoadedVersion(spec.ref, predict_pyfunc)


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
    model = spec.ref.partition("@")[0]
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
