"""Where the audit log and the registry disagree on a version's state, and the entry that puts
the log right.

A state change is audited before the registry applies it (`Lifecycle.change`), so a process
killed between the two leaves an entry for a change that never happened: the log says
`churn@3` serves while the registry's alias still names `churn@2`. The registry is what
serves, so it is the truth; the repair appends a `state.changed` entry from the audited
state to the registry's (payload `reconciled: true`, and `serving`: the version the registry
serves), under the model's lock, and "what served at T" follows the registry, back to the
entry it undoes. Nothing is edited or deleted: the chain stays valid.
"""

from __future__ import annotations

from dataclasses import dataclass

from stack.contract.states import LifecycleState
from stack.lifecycle import Lifecycle
from stack.session import StackSession
from stack.spine.audit import AuditEntry

RECONCILED = "reconciled"


@dataclass(frozen=True, slots=True)
class Disagreement:
    """`ref` is `audited` by the log and `registered` in the registry."""

    model: str
    version: int
    audited: LifecycleState
    registered: LifecycleState

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"

    def describe(self) -> str:
        return (
            f"the audit log says {self.audited.value}, the registry says "
            f"{self.registered.value} (a change audited but never applied: its process died)"
        )


def audited_states(entries: list[AuditEntry]) -> dict[str, LifecycleState]:
    """Each version's state as the log tells it (`model@N` to state), from its registration,
    state changes and the failures that undid them; entries oldest first."""
    states: dict[str, LifecycleState] = {}
    before: dict[str, LifecycleState] = {}
    for entry in entries:
        payload = entry.payload
        if entry.action == "model.registered" and isinstance(payload.get("state"), str):
            states[entry.subject] = LifecycleState(payload["state"])
        elif entry.action == "state.changed" and isinstance(payload.get("to"), str):
            if isinstance(payload.get("from"), str):
                before[entry.subject] = LifecycleState(payload["from"])
            states[entry.subject] = LifecycleState(payload["to"])
        elif entry.action == "state.change_failed" and entry.subject in before:
            states[entry.subject] = before[entry.subject]  # the move was refused
    return states


def disagreements(session: StackSession, model: str) -> list[Disagreement]:
    """Versions of `model` whose audited state is not the registry's."""
    audited = audited_states(session.spine.audit_entries(subject=model))
    found = []
    for version in session.registry.versions(model):
        said = audited.get(version.ref)
        if said is not None and said is not version.state:
            found.append(Disagreement(model, version.version, said, version.state))
    return found


def reconcile(session: StackSession, disagreement: Disagreement, *, actor: str) -> str:
    """Append the entry that makes the log tell the registry's state, under the model's lock
    (re-checked there: a promotion finishing meanwhile leaves nothing to do). Returns what
    was done, as a line to show."""
    lifecycle = Lifecycle(session)
    with lifecycle.serialized(disagreement.model):
        now = next(
            (d for d in disagreements(session, disagreement.model) if d.ref == disagreement.ref),
            None,
        )
        if now is None:
            return f"{disagreement.ref}: the log and the registry agree now"
        holders = session.registry.find_by_state(now.model, LifecycleState.SERVING)
        session.spine.audit(
            actor=actor,
            action="state.changed",
            subject=now.ref,
            reason=f"reconcile: the registry says {now.registered.value}",
            payload={
                "from": now.audited.value,
                "to": now.registered.value,
                "serving": holders[0].ref if holders else None,  # for "what served at T"
                RECONCILED: True,
            },
        )
    return f"audited {now.ref} {now.audited.value} -> {now.registered.value}, as the registry says"
