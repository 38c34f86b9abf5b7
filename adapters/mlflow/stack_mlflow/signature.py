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


_STRUCTURED = ("array", "object", "map")
_STRUCTURE = ("items", "properties", "values")


def model_folder_uri(source_uri: str, client: MlflowClient) -> str:
    """The artifact folder of a registered source: an MLflow 3 LoggedModel (`models:/m-…`)
    is resolved to its artifact location; other URIs are folders already."""
    if source_uri.startswith("models:/m-"):
        return str(client.get_logged_model(source_uri[len("models:/") :]).artifact_location)
    return source_uri


def read_mlmodel(source_uri: str, client: MlflowClient) -> dict[str, Any]:
    """The parsed MLmodel file of a stored model."""
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
    untyped = [
        c["name"]
        for c in inputs
        if not isinstance(c.get("type"), str)
        or (c["type"] in _STRUCTURED and not any(k in c for k in _STRUCTURE))
    ]
    columns = tuple(
        InputColumn(name=c["name"], type=str(c.get("type")), required=c.get("required", True))
        for c in inputs
    )
    if untyped:
        return InputSchema(
            columns,
            problem=f"columns {', '.join(map(repr, untyped))} have no type (or an array/object "
            "type without its items or properties) in the signature: give them as numbers, "
            "booleans or strings, or pass signature= with their structure",
        )
    return InputSchema(columns)


def read_input_schema(source_uri: str, client: MlflowClient) -> InputSchema:
    try:
        mlmodel = read_mlmodel(source_uri, client)
    except Exception as exc:
        return InputSchema(problem=f"its model at {source_uri} cannot be read ({exc})")
    return input_schema_of(mlmodel)
