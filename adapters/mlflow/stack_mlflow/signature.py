"""A registered version's request schema, read from the MLmodel file of its stored model.

Only the MLmodel file is fetched (a few hundred bytes), not the model: the `approved` gate
asks for it on every promotion."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml
from mlflow import MlflowClient

from stack.contract.registry import InputColumn, InputSchema

NO_SIGNATURE = (
    "the model has no signature, so its endpoint could not refuse bad input: log it again with "
    "tracker.log_model(..., input_example=<a few rows as a pandas DataFrame>) (or signature=) "
    "and register the new model"
)


#: MLflow's column types (mlflow.types.DataType, and MLflow 3's structured ones)
_KNOWN_TYPES = frozenset(
    {"boolean", "integer", "long", "float", "double", "string", "binary", "datetime"}
    | {"array", "object", "map", "any"}
)
_STRUCTURED = ("array", "object", "map")
_STRUCTURE = ("items", "properties", "values")


def model_folder_uri(source_uri: str, client: MlflowClient) -> str:
    """The artifact folder of a registered source. An MLflow 3 LoggedModel (`models:/m-…`) is
    resolved to its artifact location, and so is a run's model (`runs:/<run id>/<name>`:
    MLflow 3 keeps it in the LoggedModel of that name the run produced, not in the run's
    artifacts); other URIs are folders already."""
    if source_uri.startswith("models:/m-"):
        return str(client.get_logged_model(source_uri[len("models:/") :]).artifact_location)
    if source_uri.startswith("runs:/"):
        run_id, _, name = source_uri[len("runs:/") :].strip("/").partition("/")
        if name and "/" not in name:
            experiment = client.get_run(run_id).info.experiment_id
            found = client.search_logged_models(
                experiment_ids=[experiment], filter_string=f"name = '{name}'"
            )
            for logged in found:
                if logged.source_run_id == run_id:
                    return str(logged.artifact_location)
    return source_uri


def read_mlmodel(source_uri: str, client: MlflowClient) -> dict[str, Any]:
    """The parsed MLmodel file of a stored model (only that file is fetched)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow.artifacts import download_artifacts

    folder = model_folder_uri(source_uri, client).rstrip("/")
    with tempfile.TemporaryDirectory(prefix="mlstack-mlmodel-") as scratch:
        path = download_artifacts(
            artifact_uri=f"{folder}/MLmodel", dst_path=scratch, tracking_uri=client.tracking_uri
        )
        loaded: dict[str, Any] = yaml.safe_load(Path(path).read_text()) or {}
    return loaded


def input_schema_of(mlmodel: dict[str, Any]) -> InputSchema:
    """The named, typed input columns of an MLmodel's signature, or why there are none."""
    signature = mlmodel.get("signature") or {}
    inputs = json.loads(signature.get("inputs") or "null")
    if not inputs:
        return InputSchema(problem=NO_SIGNATURE)
    if not all(isinstance(c, dict) and c.get("name") for c in inputs):
        return InputSchema(
            problem="the signature's inputs are unnamed tensors, not columns: log it again with "
            "the input example as a pandas DataFrame with named columns"
        )
    # a structured column (MLflow 3) says what it holds, or nothing can check its values
    names = [str(c["name"]) for c in inputs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        return InputSchema(
            problem=f"columns {', '.join(map(repr, repeated))} appear more than once in the "
            "signature: a request could not say which is which"
        )
    untyped = [
        c["name"]
        for c in inputs
        if c.get("type") not in _KNOWN_TYPES
        or (c["type"] in _STRUCTURED and not any(k in c for k in _STRUCTURE))
    ]
    columns = tuple(
        InputColumn(name=c["name"], type=str(c.get("type")), required=c.get("required", True))
        for c in inputs
    )
    if untyped:
        return InputSchema(
            columns,
            problem=f"columns {', '.join(map(repr, untyped))} have no MLflow column type (or an "
            "array/object type without its items or properties) in the signature: give them "
            "as numbers, booleans or strings, or pass signature= with their structure",
        )
    return InputSchema(columns)


def read_input_schema(source_uri: str, client: MlflowClient) -> InputSchema:
    try:
        return input_schema_of(read_mlmodel(source_uri, client))
    except Exception as exc:  # unreadable, or a signature that is not MLflow's JSON
        return InputSchema(
            problem=f"its model's signature at {source_uri} cannot be read "
            f"({type(exc).__name__}: {exc})"
        )
