"""Prompts as versioned assets in MLflow's prompt registry, with mlstack's lifecycle.

The same Registry contract as models, so the core's gates, approvals, audit entries and
rollout apply to a prompt version unchanged: its state is a version tag (`mlstack.state`),
`serving` is an alias (one holder), and the run that evaluated it is a tag; the lifecycle is
the model registry's own (lifecycle.py: racing promotions, displaced versions retired). A
version's `source_uri` is `prompts:/name/N`, which MLflow's `load_prompt` understands."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException

from stack.contract.registry import ModelVersion
from stack.contract.states import LifecycleState
from stack.errors import NotFound, StackError
from stack_mlflow.lifecycle import SERVING_ALIAS, STATE_TAG, AliasLifecycle, state_of

RUN_TAG = "mlstack.run_id"


class MlflowPromptRegistry(AliasLifecycle):
    def __init__(self, client: Any) -> None:
        self.client = client

    def register(
        self,
        model: str,
        source_uri: str,
        *,
        run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        """A new candidate version of prompt `model`; `source_uri` is the template's file."""
        path = Path(source_uri.removeprefix("file://"))
        if not path.is_file():
            raise StackError(f"prompt template {source_uri!r} is not a file")
        all_tags = {**(tags or {}), STATE_TAG: LifecycleState.CANDIDATE.value}
        if run_id:
            all_tags[RUN_TAG] = run_id
        created = self.client.register_prompt(
            model, path.read_text(), commit_message=all_tags.pop("message", None), tags=None
        )
        for key, value in all_tags.items():
            self.client.set_prompt_version_tag(model, str(created.version), key, value)
        return self.get_version(model, int(created.version))

    def template(self, model: str, version: int) -> str:
        found = self._get(model, version)
        return str(found.template)

    def models(self) -> list[str]:
        return sorted(p.name for p in self.client.search_prompts())

    def get_version(self, model: str, version: int) -> ModelVersion:
        return self._convert(self._get(model, version), self._serving_version(model))

    def versions(self, model: str) -> list[ModelVersion]:
        serving = self._serving_version(model)
        found = self._search(model)
        return sorted((self._convert(v, serving) for v in found), key=lambda v: v.version)

    def find_by_run(self, run_id: str) -> list[ModelVersion]:
        return [v for name in self.models() for v in self.versions(name) if v.run_id == run_id]

    # -- helpers ------------------------------------------------------------------------

    def _get(self, model: str, version: int) -> Any:
        try:
            found = self.client.get_prompt_version(model, str(version))
        except MlflowException as exc:
            raise NotFound(f"no prompt version {model}@{version}") from exc
        if found is None:
            raise NotFound(f"no prompt version {model}@{version}")
        return found

    def _search(self, model: str) -> list[Any]:
        found: list[Any] = []
        token = None
        while True:
            try:
                page = self.client.search_prompt_versions(model, page_token=token)
            except MlflowException as exc:
                raise NotFound(f"no prompt {model!r}") from exc
            found.extend(getattr(page, "prompt_versions", page))  # a PagedList of versions
            token = getattr(page, "token", None)
            if not token:
                return found

    # -- the lifecycle's primitives (lifecycle.py) --------------------------------------

    def _set_alias(self, model: str, version: int) -> None:
        self.client.set_prompt_alias(model, SERVING_ALIAS, version)

    def _delete_alias(self, model: str) -> None:
        self.client.delete_prompt_alias(model, SERVING_ALIAS)

    def _set_tag(self, model: str, version: int, key: str, value: str) -> None:
        self.client.set_prompt_version_tag(model, str(version), key, value)

    def _version_tags(self, model: str) -> list[tuple[int, Mapping[str, str]]]:
        return [(int(found.version), dict(found.tags or {})) for found in self._search(model)]

    def _serving_version(self, model: str) -> int | None:
        try:
            found = self.client.get_prompt_version_by_alias(model, SERVING_ALIAS)
        except MlflowException:
            return None
        return int(found.version) if found is not None else None

    @staticmethod
    def _convert(found: Any, serving: int | None) -> ModelVersion:
        number = int(found.version)
        tags = dict(found.tags or {})
        return ModelVersion(
            model=found.name,
            version=number,
            state=state_of(tags, number, serving),
            source_uri=f"prompts:/{found.name}/{number}",
            run_id=tags.pop(RUN_TAG, None),
            tags=tags,
        )
