"""The Registry role on MLflow: lifecycle states as a tag, the serving version as an alias.

The `serving` alias is the single source of truth for which version serves: MLflow keeps one
version per alias per model, so two promotions that race still leave exactly one holder (the
last to write). The `mlstack.state` tag carries every other state; a version whose tag still
says `serving` while the alias names another was displaced, and reads as `retired`. Tags of
displaced versions are tidied after each promotion so MLflow's UI shows the same thing.
mlstack's core applies the promotions of one model one at a time (a lock in its spine).
Never MLflow's deprecated stages.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from mlflow.entities.model_registry import ModelVersion as MlflowModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking._tracking_service.utils import _use_tracking_uri

from stack.contract.registry import InputSchema, ModelVersion
from stack.contract.states import LifecycleState, can_transition
from stack.errors import InvalidTransition, NotFound, StackError
from stack.plugins.manifest import AdapterContext
from stack_mlflow.config import MlflowRegistryConfig
from stack_mlflow.connection import make_client
from stack_mlflow.prompts import MlflowPromptRegistry

STATE_TAG = "mlstack.state"
SERVING_ALIAS = "serving"
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
_MISSING = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}
_GLOBAL_URI_LOCK = threading.Lock()
_ALIAS_ATTEMPTS = 5


class MlflowRegistry:
    def __init__(self, config: MlflowRegistryConfig | None, context: AdapterContext) -> None:
        self.client = make_client(config or MlflowRegistryConfig(), context)

    def register(
        self,
        model: str,
        source_uri: str,
        *,
        run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
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
        return self._convert(created, self._serving_version(model))

    def prompts(self) -> MlflowPromptRegistry:
        """Prompts in the same MLflow, under the same lifecycle (the `prompts` capability)."""
        return MlflowPromptRegistry(self.client)

    def input_schema(self, version: ModelVersion) -> InputSchema:
        """The request schema in the version's MLmodel signature (the `approved` gate's)."""
        from stack_mlflow.signature import read_input_schema

        return read_input_schema(version.source_uri, self.client)

    def load_model(self, version: ModelVersion) -> object:
        """The version's model as an MLflow pyfunc (`predict(DataFrame)`), from this
        registry's store."""
        import mlflow.pyfunc

        with _GLOBAL_URI_LOCK, _use_tracking_uri(self.client.tracking_uri):
            return mlflow.pyfunc.load_model(version.source_uri)

    def models(self) -> list[str]:
        names: list[str] = []
        token = None
        while True:
            page = self.client.search_registered_models(page_token=token)
            names.extend(m.name for m in page)
            token = page.token
            if not token:
                return sorted(names)

    def get_version(self, model: str, version: int) -> ModelVersion:
        _check_name(model)
        try:
            found = self.client.get_model_version(model, str(version))
        except MlflowException as exc:
            if exc.error_code in _MISSING:
                raise NotFound(f"no model version {model}@{version}") from exc
            raise
        return self._convert(found, self._serving_version(model))

    def versions(self, model: str) -> list[ModelVersion]:
        _check_name(model)
        serving = self._serving_version(model)
        found = self._search(f"name='{model}'")
        return sorted((self._convert(v, serving) for v in found), key=lambda v: v.version)

    def find_by_state(self, model: str, state: LifecycleState) -> list[ModelVersion]:
        if state is LifecycleState.SERVING:
            serving = self._serving_version(model)
            return [] if serving is None else [self.get_version(model, serving)]
        return [v for v in self.versions(model) if v.state == state]

    def find_by_run(self, run_id: str) -> list[ModelVersion]:
        if not re.fullmatch(r"[A-Za-z0-9\-]+", run_id):
            raise StackError(f"{run_id!r} is not a run id")
        found = self._search(f"run_id='{run_id}'")
        serving = {name: self._serving_version(name) for name in {v.name for v in found}}
        return sorted(
            (self._convert(v, serving[v.name]) for v in found),
            key=lambda v: (v.model, v.version),
        )

    def set_state(self, model: str, version: int, state: LifecycleState) -> ModelVersion:
        current = self.get_version(model, version)
        if not can_transition(current.state, state):
            raise InvalidTransition(
                f"{current.ref} is {current.state.value}; it cannot move to {state.value}"
            )
        if state is LifecycleState.SERVING:
            # Alias first: the moment it moves, this version serves and the old one does not.
            self._move_serving_alias(model, version)
            self._tag(model, version, state)
            self._tidy_displaced(model, version)
        else:
            if current.state is LifecycleState.SERVING:
                self._release_alias(model, version)
            self._tag(model, version, state)
        return self.get_version(model, version)

    # -- helpers ------------------------------------------------------------------------

    def _move_serving_alias(self, model: str, version: int) -> None:
        """Point `serving` at `version`. MLflow creates a missing alias with a plain INSERT,
        so when two promotions race the second can hit the unique key: it retries, and then
        finds the alias there and updates it (last writer wins, one holder always)."""
        for attempt in range(_ALIAS_ATTEMPTS):
            try:
                self.client.set_registered_model_alias(model, SERVING_ALIAS, str(version))
                return
            except MlflowException as exc:
                conflict = "UniqueViolation" in str(exc) or "UNIQUE constraint" in str(exc)
                if not conflict or attempt + 1 == _ALIAS_ATTEMPTS:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def _tag(self, model: str, version: int, state: LifecycleState) -> None:
        self.client.set_model_version_tag(model, str(version), STATE_TAG, state.value)

    def _tidy_displaced(self, model: str, promoted: int) -> None:
        """Versions still tagged `serving` that the alias no longer names become `retired`.

        The tags are read before the alias: a version promoted by a racing writer moves the
        alias before it tags itself, so it is either the holder read here or not yet tagged
        `serving` (mlstack serializes promotions of a model; this keeps other writers from
        retiring the holder too)."""
        tagged = [
            int(found.version)
            for found in self._search(f"name='{model}'")
            if found.tags.get(STATE_TAG) == "serving"
        ]
        holder = self._serving_version(model)
        for number in tagged:
            if number not in (holder, promoted):
                self._tag(model, number, LifecycleState.RETIRED)

    def _release_alias(self, model: str, version: int) -> None:
        if self._serving_version(model) == version:
            self.client.delete_registered_model_alias(model, SERVING_ALIAS)

    def _serving_version(self, model: str) -> int | None:
        try:
            return int(self.client.get_model_version_by_alias(model, SERVING_ALIAS).version)
        except MlflowException as exc:
            if exc.error_code in _MISSING:
                return None
            raise

    def _search(self, filter_string: str) -> list[MlflowModelVersion]:
        found: list[MlflowModelVersion] = []
        token = None
        while True:
            page = self.client.search_model_versions(filter_string, page_token=token)
            found.extend(page)
            token = page.token
            if not token:
                return found

    @staticmethod
    def _convert(version: MlflowModelVersion, serving: int | None) -> ModelVersion:
        number = int(version.version)
        tags = dict(version.tags)
        state = LifecycleState(tags.pop(STATE_TAG, LifecycleState.CANDIDATE.value))
        if number == serving:
            state = LifecycleState.SERVING
        elif state is LifecycleState.SERVING:  # displaced by a newer promotion
            state = LifecycleState.RETIRED
        return ModelVersion(
            model=version.name,
            version=number,
            state=state,
            source_uri=version.source or "",
            run_id=version.run_id or None,
            created_at=datetime.fromtimestamp(version.creation_timestamp / 1000, UTC),
            tags=tags,
        )


def _check_name(model: str) -> None:
    if not _NAME.match(model):
        raise StackError(f"model name {model!r}: use letters, digits, '.', '_' and '-' only")
