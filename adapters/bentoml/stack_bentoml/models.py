"""A registry version made servable: its MLflow model copied into BentoML's model store.

The request schema comes from the MLflow signature (a model logged without one is refused:
an endpoint that accepts anything cannot refuse bad input). The BentoML model is named after
the version (`churn:v3`), so importing it twice reuses it, and `bentoml build` can package it."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from stack.contract.registry import ModelVersion
from stack.contract.tracking import TRACE_EXPERIMENT_TAG
from stack.errors import StackError
from stack_bentoml.locks import flocked
from stack_bentoml.spec import Column, TraceSink, VersionSpec


def model_store(bentoml_home: Path) -> Any:
    """The stack's own BentoML model store, named explicitly: BentoML's default store is
    fixed per process by BENTOML_HOME at import, and one process may serve several stacks."""
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    from bentoml._internal.models.model import ModelStore

    return ModelStore(bentoml_home / "models")


def model_tag(version: ModelVersion) -> str:
    name = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in version.model.lower())
    return f"{name}:v{version.version}"


def import_version(
    version: ModelVersion, tracking_uri: str, bentoml_home: Path, *, artifact_location: str
) -> VersionSpec:
    import bentoml
    from bentoml.exceptions import NotFound as BentoNotFound

    tag = model_tag(version)
    store = model_store(bentoml_home)
    # one import into a model's folder of the store at a time: two deploys of a version at
    # once would both create its tag, and of two versions both write the folder's `latest`
    with flocked(bentoml_home / "imports" / f"{tag.partition(':')[0]}.lock"):
        try:
            stored = bentoml.models.get(tag, _model_store=store)
        except BentoNotFound:
            stored = None
        if stored is not None and not _same_source(stored.info.metadata, version):
            # the tag is the model's name and number alone: a store shared by two stacks (a
            # local quickstart's and production's) holds another registry's version under it
            bentoml.models.delete(tag, _model_store=store)
            stored = None
        if stored is None:
            with tempfile.TemporaryDirectory(prefix="mlstack-import-") as scratch:
                local = _download(version, tracking_uri, Path(scratch))
                _signature(local, version)  # refuse before anything is stored
                with bentoml.models.create(
                    tag,
                    labels={
                        "mlstack.model": version.model,
                        "mlstack.version": str(version.version),
                    },
                    metadata={"source_uri": version.source_uri, "run_id": version.run_id or ""},
                    _model_store=store,
                ) as created:
                    shutil.copytree(local, Path(created.path) / "mlflow", dirs_exist_ok=True)
                stored = bentoml.models.get(tag, _model_store=store)
    model_dir = Path(stored.path) / "mlflow"
    return VersionSpec(
        ref=version.ref,
        model_tag=str(stored.tag),
        model_dir=str(model_dir),
        flavor="sklearn" if "sklearn" in _mlmodel(model_dir).get("flavors", {}) else "pyfunc",
        inputs=_signature(model_dir, version),
        traces=_trace_sink(version, tracking_uri, artifact_location),
    )


def _same_source(metadata: Mapping[str, object], version: ModelVersion) -> bool:
    """Whether a stored model was imported from `version` (its registry's source and run)."""
    return metadata.get("source_uri") == version.source_uri and metadata.get("run_id") == (
        version.run_id or ""
    )


def _trace_sink(
    version: ModelVersion, tracking_uri: str, artifact_location: str
) -> TraceSink | None:
    """An app registered with the tag `mlstack.trace_experiment` is traced where it is served,
    into that experiment of the stack's tracking store (online evaluation reads it there)."""
    experiment = version.tags.get(TRACE_EXPERIMENT_TAG)
    if not experiment:
        return None
    return TraceSink(
        tracking_uri=tracking_uri, experiment=experiment, artifact_location=artifact_location
    )


def _download(version: ModelVersion, tracking_uri: str, scratch: Path) -> Path:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts

    from stack_mlflow.signature import model_folder_uri

    try:
        uri = model_folder_uri(version.source_uri, MlflowClient(tracking_uri))
        return Path(
            download_artifacts(artifact_uri=uri, dst_path=str(scratch), tracking_uri=tracking_uri)
        )
    except Exception as exc:
        raise StackError(
            f"{version.ref}: cannot fetch its model from {version.source_uri} ({exc})"
        ) from exc


def _mlmodel(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "MLmodel"
    if not path.is_file():
        raise StackError(f"{model_dir} is not an MLflow model (no MLmodel file)")
    loaded: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
    return loaded


def _signature(model_dir: Path, version: ModelVersion) -> tuple[Column, ...]:
    """The request columns of the model's signature, structure included (arrays, objects);
    refused, naming the version, when no endpoint could validate requests with it."""
    from stack_mlflow.signature import input_schema_of

    mlmodel = _mlmodel(model_dir)
    schema = input_schema_of(mlmodel)
    if schema.problem is not None:
        raise StackError(f"{version.ref}: {schema.problem}")
    try:
        return tuple(
            Column.from_signature(entry) for entry in json.loads(mlmodel["signature"]["inputs"])
        )
    except ValueError as exc:
        raise StackError(f"{version.ref}: {exc}") from exc
