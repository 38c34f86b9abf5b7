"""The Registry role on MLflow: lifecycle states as a tag, the serving version as an alias
(lifecycle.py, shared with the prompt registry). Never MLflow's deprecated stages.

Reads, and the writes of a lifecycle change (a version's tag, the `serving` alias), go
through `light/` (MLflow's tables or REST API, without importing MLflow) where the store
allows. MLflow's client is built for every other write (`register`, a model's files), and
from then on this registry reads through it too."""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING

from stack.contract.registry import InputSchema, ModelVersion
from stack.contract.states import LifecycleState
from stack.errors import NotFound, StackError
from stack.plugins.manifest import AdapterContext
from stack_mlflow.config import MlflowRegistryConfig
from stack_mlflow.connection import make_client, registry_uri
from stack_mlflow.lifecycle import SERVING_ALIAS, STATE_TAG, AliasLifecycle, state_of
from stack_mlflow.light import (
    ClientReads,
    ClientWrites,
    MlflowReads,
    MlflowWrites,
    StoredVersion,
    from_entity,
    light_reads,
    light_writes,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from stack_mlflow.prompts import MlflowPromptRegistry

_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
_GLOBAL_URI_LOCK = threading.Lock()


class MlflowRegistry(AliasLifecycle):
    def __init__(self, config: MlflowRegistryConfig | None, context: AdapterContext) -> None:
        self.config = config or MlflowRegistryConfig()
        self.context = context

    @cached_property
    def client(self) -> MlflowClient:
        """MLflow's client on this registry (imports MLflow; built on first use)."""
        return make_client(self.config, self.context)

    @property
    def reads(self) -> MlflowReads:
        """The light reads (the reads package) until MLflow's client is built, then that client."""
        return ClientReads(self.client) if "client" in self.__dict__ else self._light

    @cached_property
    def _light(self) -> MlflowReads:
        return light_reads(registry_uri(self.config, self.context), self.config) or ClientReads(
            self.client
        )

    @cached_property
    def writes(self) -> MlflowWrites:
        """The lifecycle's writes: without MLflow on the stores the light reads read, else
        through MLflow's client."""
        return light_writes(self._light) or ClientWrites(self.client)

    def register(
        self,
        model: str,
        source_uri: str,
        *,
        run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        from mlflow.exceptions import MlflowException
        from mlflow.tracking._tracking_service.utils import _use_tracking_uri

        _check_name(model)
        try:
            self.client.create_registered_model(model)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        model_id = (
            source_uri.removeprefix("models:/") if source_uri.startswith("models:/m-") else None
        )
        # MLflow's local registry store resolves a `models:/m-…` source through the
        # process-global tracking URI (a TODO in MLflow), not this client's: point it here.
        with _GLOBAL_URI_LOCK, _use_tracking_uri(self.client.tracking_uri):
            created = self.client.create_model_version(
                model,
                source_uri,
                run_id=run_id,
                tags={**(tags or {}), STATE_TAG: LifecycleState.CANDIDATE.value},
                model_id=model_id,
            )
        return self._convert(from_entity(created), self._serving_version(model))

    def prompts(self) -> MlflowPromptRegistry:
        """Prompts in the same MLflow, under the same lifecycle (the `prompts` capability)."""
        from stack_mlflow.prompts import MlflowPromptRegistry

        return MlflowPromptRegistry(self.client)

    def input_schema(self, version: ModelVersion) -> InputSchema:
        """The request schema in the version's MLmodel signature (the `approved` gate's)."""
        from stack_mlflow.signature import read_input_schema

        return read_input_schema(version.source_uri, self.client)

    def load_model(self, version: ModelVersion) -> object:
        """The version's model as an MLflow pyfunc (`predict(DataFrame)`), from this
        registry's store."""
        import mlflow.pyfunc
        from mlflow.tracking._tracking_service.utils import _use_tracking_uri

        with _GLOBAL_URI_LOCK, _use_tracking_uri(self.client.tracking_uri):
            return mlflow.pyfunc.load_model(version.source_uri)

    def models(self) -> list[str]:
        return self.reads.model_names()

    def get_version(self, model: str, version: int) -> ModelVersion:
        _check_name(model)
        found = self.reads.version(model, version)
        if found is None:
            raise NotFound(f"no model version {model}@{version}")
        return self._convert(found, self._serving_version(model))

    def versions(self, model: str) -> list[ModelVersion]:
        _check_name(model)
        serving = self._serving_version(model)
        return [self._convert(v, serving) for v in self.reads.versions(model)]

    def find_by_run(self, run_id: str) -> list[ModelVersion]:
        if not re.fullmatch(r"[A-Za-z0-9\-]+", run_id):
            raise StackError(f"{run_id!r} is not a run id")
        found = self.reads.by_run(run_id)
        serving = {name: self._serving_version(name) for name in {v.name for v in found}}
        return sorted(
            (self._convert(v, serving[v.name]) for v in found),
            key=lambda v: (v.model, v.version),
        )

    # -- the lifecycle's primitives (lifecycle.py) --------------------------------------

    def _set_alias(self, model: str, version: int) -> None:
        self.writes.set_alias(model, SERVING_ALIAS, version)

    def _delete_alias(self, model: str) -> None:
        self.writes.delete_alias(model, SERVING_ALIAS)

    def _set_tag(self, model: str, version: int, key: str, value: str) -> None:
        self.writes.set_version_tag(model, version, key, value)

    def _version_tags(self, model: str) -> list[tuple[int, Mapping[str, str]]]:
        return [(found.version, found.tags) for found in self.reads.versions(model)]

    def _serving_version(self, model: str) -> int | None:
        return self.reads.alias(model, SERVING_ALIAS)

    @staticmethod
    def _convert(version: StoredVersion, serving: int | None) -> ModelVersion:
        tags = dict(version.tags)
        return ModelVersion(
            model=version.name,
            version=version.version,
            state=state_of(tags, version.version, serving),
            source_uri=version.source,
            run_id=version.run_id,
            created_at=datetime.fromtimestamp(version.created_ms / 1000, UTC),
            tags=tags,
        )


def _check_name(model: str) -> None:
    if not _NAME.match(model):
        raise StackError(f"model name {model!r}: use letters, digits, '.', '_' and '-' only")
