"""The Registry role: versions of a model and the lifecycle state each one is in."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from stack.contract.states import LifecycleState
from stack.errors import StackError


@dataclass(frozen=True, slots=True)
class ModelVersion:
    model: str
    version: int
    state: LifecycleState
    source_uri: str
    run_id: str | None = None
    created_at: datetime | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        """`model@version`, the form the CLI and the audit log use."""
        return f"{self.model}@{self.version}"


_SELECTOR = re.compile(r"^(?P<model>[A-Za-z0-9_.\-]+)@(?P<at>[A-Za-z0-9_\-]+)$")


@dataclass(frozen=True, slots=True)
class ModelSelector:
    """`churn@serving` or `churn@3`: a model and either a lifecycle state or a version number."""

    model: str
    state: LifecycleState | None = None
    version: int | None = None

    @classmethod
    def parse(cls, text: str) -> ModelSelector:
        match = _SELECTOR.match(text.strip())
        if not match:
            raise StackError(
                f"{text!r} is not a model selector: write MODEL@STATE (e.g. churn@serving) "
                "or MODEL@VERSION (e.g. churn@3)"
            )
        model, at = match["model"], match["at"]
        if at.isdigit():
            return cls(model=model, version=int(at))
        try:
            return cls(model=model, state=LifecycleState(at))
        except ValueError:
            states = ", ".join(s.value for s in LifecycleState)
            raise StackError(f"{text!r}: unknown state {at!r}; states are {states}") from None

    def __str__(self) -> str:
        return f"{self.model}@{self.version if self.version is not None else self.state}"


@runtime_checkable
class Registry(Protocol):
    """Holds model versions and applies state changes the core has already decided.

    Gates, approvals and the audit entry happen in the core before `set_state` is called; an
    adapter only applies the change, atomically, keeping exclusive states exclusive.
    """

    def register(
        self,
        model: str,
        source_uri: str,
        *,
        run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        """Create the next version of `model` in state `candidate`."""
        ...

    def models(self) -> list[str]:
        """Names of every registered model."""
        ...

    def get_version(self, model: str, version: int) -> ModelVersion: ...

    def versions(self, model: str) -> list[ModelVersion]: ...

    def find_by_state(self, model: str, state: LifecycleState) -> list[ModelVersion]: ...

    def find_by_run(self, run_id: str) -> list[ModelVersion]: ...

    def set_state(self, model: str, version: int, state: LifecycleState) -> ModelVersion:
        """Move a version; entering an exclusive state retires its previous holder."""
        ...


@dataclass(frozen=True, slots=True)
class InputColumn:
    """One column of a version's request schema, in the model signature's type names
    (`double`, `float`, `long`, `integer`, `boolean`, `string`…)."""

    name: str
    type: str
    required: bool = True


@dataclass(frozen=True, slots=True)
class InputSchema:
    """What a version's endpoint can validate requests against. `problem` says why it cannot
    (no signature, unnamed tensor inputs…) and what to do; None when the schema is usable."""

    columns: tuple[InputColumn, ...] = ()
    problem: str | None = None


@runtime_checkable
class InputSchemaReader(Protocol):
    """Optional: read a version's request schema from its stored model, so the `approved`
    gate can refuse a version no endpoint could validate requests for."""

    def input_schema(self, version: ModelVersion) -> InputSchema: ...


@runtime_checkable
class ModelLoader(Protocol):
    """Optional: load a version's model into this process, as an object with
    `predict(frame)` (batch scoring, evaluation of a champion outside its endpoint)."""

    def load_model(self, version: ModelVersion) -> object: ...


@runtime_checkable
class PromptStore(Protocol):
    """Optional: prompts as versioned assets, in a Registry of their own that follows the
    same lifecycle (so gates, approvals, audit and rollout apply to prompt versions)."""

    def prompts(self) -> Registry: ...
