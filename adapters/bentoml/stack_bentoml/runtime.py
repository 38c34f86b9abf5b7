"""A model version loaded in a serving worker: rows in column order in, a JSON list out.

A scikit-learn model is called natively on a numpy array: MLflow's pyfunc wrapper (a pandas
frame and schema enforcement per call) costs several times sklearn's own predict for one row,
and validation already happened on the request. Other flavors go through pyfunc."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

    return LoadedVersion(spec.ref, predict_pyfunc)


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
