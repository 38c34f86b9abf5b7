"""Registering model versions and moving them between lifecycle states, through the core.

The core decides and records; the Registry adapter only applies. Every registration and
state change is an audit entry (actor, subject, reason), lineage links the training run to
the version, and the lifecycle hooks are asked first (`on_promotion_requested` may veto).
The audit entry is written before the registry changes, and a failure to apply is audited
too, so the log never misses a change that happened. Changes of one model are serialized
across processes by a lock in the spine, so the audit's order is the registry's.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from stack.config.recipe_file import Recipe
from stack.contract.features import TrainingFrame
from stack.contract.registry import ModelVersion
from stack.contract.roles import Role
from stack.contract.states import (
    EXCLUSIVE_STATES,
    LifecycleState,
    can_transition,
    refused_move,
    way_back,
)
from stack.errors import InvalidTransition, Vetoed
from stack.identity import current_actor
from stack.session import OWNER_TAG, POLICY_TAG, RECIPE_TAG, RISK_TAG, StackSession
from stack.spine.lineage import NodeKind, NodeRef

__all__ = ["OWNER_TAG", "POLICY_TAG", "RECIPE_TAG", "RISK_TAG", "Lifecycle", "StateChange"]


@dataclass(frozen=True, slots=True)
class StateChange:
    """One applied move: the version in its new state, the state it left, and the versions
    (`model@N`) it displaced from an exclusive state (`serving`), each now retired
    (`displaced_versions`: the same, as read before the move)."""

    version: ModelVersion
    previous: LifecycleState
    displaced: tuple[str, ...] = ()
    displaced_versions: tuple[ModelVersion, ...] = field(default=(), repr=False, compare=False)


class Lifecycle:
    """Registers versions and moves them between states through the core: every change
    audited, linked in lineage, offered to the hooks. `Lifecycle(ctx.session)` in a step."""

    def __init__(self, session: StackSession) -> None:
        self.session = session

    def register(
        self,
        model: str,
        source_uri: str,
        *,
        run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        actor: str | None = None,
        reason: str = "",
        recipe: Recipe | None = None,
    ) -> ModelVersion:
        """A new candidate version, audited, linked to its run, announced to the hooks.

        `source_uri`: what `Tracker.log_model` returned; `run_id`: the training run (gates
        read its metrics and datasets). With `recipe`, the version is tagged with it (its
        gates apply to later promotions) and with the owner and risk tier the recipe
        declares. Returns the version (`.ref` is `model@N`, state `candidate`). Raises
        Vetoed when a hook refuses, StackError for a bad model name."""
        who = actor or current_actor()
        all_tags = dict(tags or {})
        if recipe is not None:
            all_tags[RECIPE_TAG] = str(recipe.path)  # the file: a folder may hold several
            all_tags[POLICY_TAG] = recipe.policy_digest  # what judged it, should the file move
            if recipe.spec.model is not None:
                all_tags[OWNER_TAG] = recipe.spec.model.owner or who
                all_tags[RISK_TAG] = recipe.spec.model.risk_tier
        version = self.session.registry.register(model, source_uri, run_id=run_id, tags=all_tags)
        spine = self.session.spine
        spine.audit(
            actor=who,
            action="model.registered",
            subject=version.ref,
            reason=reason,
            payload={
                "source": source_uri,
                "run_id": run_id,
                "state": version.state.value,
                "kind": self.session.version_kind,  # a model's version, or a prompt's
            },
        )
        if run_id:
            spine.link(
                NodeRef(NodeKind.RUN, run_id),
                NodeRef(NodeKind(self.session.version_kind), version.ref),
                "produced",
            )
        self.session.emit("on_model_registered", subject=version.ref, version=version)
        return version

    def record_training_frame(self, run_id: str, frame: TrainingFrame) -> None:
        """Lineage of a run's training data: the frame's fingerprint and every feature view
        it used, linked to the run that consumed them (and the frame logged as a dataset
        input when the stack has a tracker)."""
        spine = self.session.spine
        run = NodeRef(NodeKind.RUN, run_id)
        data = NodeRef(NodeKind.DATA_SNAPSHOT, frame.fingerprint.digest)
        spine.link(
            data,
            run,
            "trained_on",
            attributes={
                data: {
                    "rows": frame.fingerprint.rows,
                    "columns": list(frame.fingerprint.columns),
                    "source": frame.fingerprint.source,
                }
            },
        )
        for view in frame.feature_views:
            spine.link(NodeRef(NodeKind.FEATURE_VIEW, f"{view.name}@{view.version}"), run, "fed")
        if self.session.has(Role.TRACKER):
            record = self.session.tracker.get_run(run_id)
            self.session.tracker.log_dataset(record.ref, frame.fingerprint, context="training")

    def transition(
        self,
        model: str,
        version: int,
        target: LifecycleState,
        *,
        actor: str | None = None,
        reason: str = "",
    ) -> ModelVersion:
        """Move a version to `target` if the move is legal and no hook vetoes it (see
        `change`); returns the version in its new state."""
        return self.change(model, version, target, actor=actor, reason=reason).version

    def change(
        self,
        model: str,
        version: int,
        target: LifecycleState,
        *,
        actor: str | None = None,
        reason: str = "",
        decide: Callable[[ModelVersion], None] | None = None,
    ) -> StateChange:
        """Move a version to `target`, one change of `model` at a time across processes.

        Under `model`'s lock in the spine (see `serialized`) the version's state is read
        again, the move checked, `decide` called with it (a gate: raise to refuse), the hooks
        asked, the change audited and applied to the registry; so the audit's order is the
        registry's, and the versions a promotion into `serving` displaces are those serving
        at that moment, each retired with its own `state.changed` entry. Hooks of
        `on_promoted` and the model card run after the lock is released.

        Raises InvalidTransition, Vetoed, what `decide` raises, LockTimeout when another
        process holds the lock past its wait; the registry's error (audited as
        `state.change_failed`, with the version serving after it) when it refuses."""
        who = actor or current_actor()
        with self.serialized(model):
            current = self.session.registry.get_version(model, version)
            if not can_transition(current.state, target):
                raise self.refusal(current, target)
            if decide is not None:
                decide(current)
            self._ask_hooks(current, target, who)
            applied = self._apply(current, target, who, reason)
        self.session.emit(
            "on_promoted",
            subject=current.ref,
            version=applied.version,
            previous_state=current.state.value,
        )
        self.refresh_card(applied.version)
        for displaced in applied.displaced_versions:  # their cards said they served
            self.refresh_card(displaced, reread=True)
        return applied

    def refusal(self, version: ModelVersion, target: LifecycleState) -> InvalidTransition:
        """The error for a move the lifecycle does not allow, saying how a retired or
        rejected version comes back (with the promote command of its kind)."""
        return InvalidTransition(
            refused_move(version.ref, version.state, target, self.promote_command)
        )

    def way_back(self, version: ModelVersion) -> str:
        """How a retired or rejected `version` comes back ("" for another): see `refusal`."""
        return way_back(version.ref, version.state, self.promote_command)

    @property
    def promote_command(self) -> str:
        prompts = self.session.version_kind == NodeKind.PROMPT_VERSION.value
        return "mlstack prompts promote" if prompts else "mlstack promote"

    @contextmanager
    def serialized(self, model: str) -> Iterator[None]:
        """Hold `model`'s lock in the spine: one state change of `model` at a time across
        every process sharing the spine (other models go on). Released when the block ends
        or the process dies; a thread holding it may enter again."""
        kind = self.session.version_kind.removesuffix("_version")
        with self.session.spine.locks.hold(f"state changes of {kind} {model}"):
            yield

    def _ask_hooks(self, current: ModelVersion, target: LifecycleState, who: str) -> None:
        try:
            self.session.emit(
                "on_promotion_requested",
                subject=current.ref,
                version=current,
                target_state=target.value,
                actor=who,
            )
        except Vetoed as exc:
            self.session.spine.audit(
                actor=who,
                action="state.vetoed",
                subject=current.ref,
                reason="; ".join(exc.reasons),
                payload={"to": target.value},
            )
            raise

    def _apply(
        self, current: ModelVersion, target: LifecycleState, who: str, reason: str
    ) -> StateChange:
        """Audit, then apply (the lock held): the entry precedes the change it records."""
        registry, spine = self.session.registry, self.session.spine
        holders = (
            tuple(
                v
                for v in registry.find_by_state(current.model, target)
                if v.version != current.version
            )
            if target in EXCLUSIVE_STATES
            else ()
        )
        displaced = tuple(v.ref for v in holders)
        spine.audit(
            actor=who,
            action="state.changed",
            subject=current.ref,
            reason=reason,
            payload={"from": current.state.value, "to": target.value, "displaced": list(displaced)},
        )
        try:
            updated = registry.set_state(current.model, current.version, target)
        except Exception as exc:
            spine.audit(
                actor=who,
                action="state.change_failed",
                subject=current.ref,
                reason=f"{type(exc).__name__}: {exc}",
                payload={"to": target.value, **self._serving_after_failure(current, target)},
            )
            raise
        for ref in displaced:
            spine.audit(
                actor=who,
                action="state.changed",
                subject=ref,
                reason=f"displaced by {current.ref}",
                payload={
                    "from": target.value,
                    "to": LifecycleState.RETIRED.value,
                    "displaced_by": current.ref,
                },
            )
        return StateChange(updated, current.state, displaced, holders)

    def _serving_after_failure(
        self, current: ModelVersion, target: LifecycleState
    ) -> dict[str, str | None]:
        """`{"serving": ref or None}` as the registry reads after a failed move into or out
        of `serving` ("what served at T" follows it); empty when that is unreadable too."""
        if LifecycleState.SERVING not in (target, current.state):
            return {}
        try:
            found = self.session.registry.find_by_state(current.model, LifecycleState.SERVING)
        except Exception:  # the registry that just failed may not answer: claim nothing
            return {}
        return {"serving": found[0].ref if found else None}

    def refresh_card(self, version: ModelVersion, *, reread: bool = False) -> None:
        """Write the model card of `version` again (`reread`: as the registry reads it now);
        the state change stands even if this fails."""
        from stack.governance.cards import write_card

        try:
            if reread:
                version = self.session.registry.get_version(version.model, version.version)
            write_card(self.session, version, self.session.recipe_for(version, required=False))
        except Exception as exc:  # the card is a report of the change, not part of it
            warnings.warn(
                f"model card of {version.ref} not updated: {type(exc).__name__}: {exc}",
                stacklevel=2,
            )
