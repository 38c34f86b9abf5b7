"""mlstack's lifecycle on MLflow, for any asset MLflow versions under aliases (models and
prompts): the `serving` alias says which version serves, a version tag every other state.

The alias is the single source of truth for which version serves: MLflow keeps one version
per alias, so two promotions that race still leave exactly one holder (the last to write). A
version whose tag still says `serving` while the alias names another was displaced, and
reads as `retired`; its tag is tidied after each promotion so MLflow's UI says the same.
mlstack's core applies the promotions of one asset one at a time (a lock in its spine); other
writers are why the alias is retried and the displaced are read from the tags.
Never MLflow's deprecated stages.

`AliasLifecycle` holds that logic once; a registry gives it five primitives (the alias:
read, set, delete; a version's tag: set; the versions' tags: listed), over MLflow's client or,
for models, without it (light/writes.py)."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, MutableMapping

from stack.contract.registry import ModelVersion
from stack.contract.states import LifecycleState, can_transition, refused_move
from stack.errors import InvalidTransition

STATE_TAG = "mlstack.state"
SERVING_ALIAS = "serving"
ALIAS_ATTEMPTS = 5
#: How SQLite, PostgreSQL (psycopg 2 and 3) and MySQL say a unique key was hit.
UNIQUE_CONFLICT = ("UNIQUE constraint", "UniqueViolation", "duplicate key", "Duplicate entry")


def state_of(tags: MutableMapping[str, str], number: int, serving: int | None) -> LifecycleState:
    """The state of version `number` given its tags (the state tag is popped from them) and
    the version the `serving` alias names."""
    state = LifecycleState(tags.pop(STATE_TAG, LifecycleState.CANDIDATE.value))
    if number == serving:
        return LifecycleState.SERVING
    if state is LifecycleState.SERVING:  # displaced by a newer promotion
        return LifecycleState.RETIRED
    return state


class AliasLifecycle(ABC):
    """`set_state` and `find_by_state` of the Registry contract, over the primitives below."""

    @abstractmethod
    def get_version(self, model: str, version: int) -> ModelVersion: ...

    @abstractmethod
    def versions(self, model: str) -> list[ModelVersion]: ...

    @abstractmethod
    def _serving_version(self, model: str) -> int | None:
        """The version the `serving` alias names; None when there is none."""

    @abstractmethod
    def _set_alias(self, model: str, version: int) -> None:
        """Point `serving` at `version` (MLflow's call, as is)."""

    @abstractmethod
    def _delete_alias(self, model: str) -> None: ...

    @abstractmethod
    def _set_tag(self, model: str, version: int, key: str, value: str) -> None: ...

    @abstractmethod
    def _version_tags(self, model: str) -> list[tuple[int, Mapping[str, str]]]:
        """Every version of `model` with its tags, as MLflow stores them."""

    def find_by_state(self, model: str, state: LifecycleState) -> list[ModelVersion]:
        if state is LifecycleState.SERVING:
            serving = self._serving_version(model)
            return [] if serving is None else [self.get_version(model, serving)]
        return [v for v in self.versions(model) if v.state == state]

    def set_state(self, model: str, version: int, state: LifecycleState) -> ModelVersion:
        current = self.get_version(model, version)
        if not can_transition(current.state, state):
            raise InvalidTransition(refused_move(current.ref, current.state, state))
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

    def _move_serving_alias(self, model: str, version: int) -> None:
        """Point `serving` at `version`. MLflow creates a missing alias with a plain INSERT,
        so when two promotions race the second can hit the unique key: it retries, and then
        finds the alias there and updates it (last writer wins, one holder always). The
        conflict is told by the database's words, whoever carries them (MLflow's exception, or
        SQLAlchemy's from the light writes): catching a type would import MLflow."""
        for attempt in range(ALIAS_ATTEMPTS):
            try:
                self._set_alias(model, version)
                return
            except Exception as exc:
                conflict = any(word in str(exc) for word in UNIQUE_CONFLICT)
                if not conflict or attempt + 1 == ALIAS_ATTEMPTS:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def _tag(self, model: str, version: int, state: LifecycleState) -> None:
        self._set_tag(model, version, STATE_TAG, state.value)

    def _tidy_displaced(self, model: str, promoted: int) -> None:
        """Versions still tagged `serving` that the alias no longer names become `retired`.

        The tags are read before the alias: a version promoted by a racing writer moves the
        alias before it tags itself, so it is either the holder read here or not yet tagged
        `serving` (this keeps other writers from retiring the holder too)."""
        tagged = [
            number
            for number, tags in self._version_tags(model)
            if tags.get(STATE_TAG) == LifecycleState.SERVING.value
        ]
        holder = self._serving_version(model)
        for number in tagged:
            if number not in (holder, promoted):
                self._tag(model, number, LifecycleState.RETIRED)

    def _release_alias(self, model: str, version: int) -> None:
        if self._serving_version(model) == version:
            self._delete_alias(model)
