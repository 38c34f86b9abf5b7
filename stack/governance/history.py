"""What served when, read from the audit log (every state change is one entry in it)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from stack.spine.audit import AuditEntry
from stack.spine.store import SpineStore


@dataclass(frozen=True, slots=True)
class ServingChange:
    at: datetime
    version: str | None  # None: nothing served from then on
    actor: str
    reason: str


def serving_history(spine: SpineStore, model: str) -> list[ServingChange]:
    """Every moment the serving version of `model` changed, oldest first.

    Read from `state.changed` entries (in the registry's order: changes of one model are
    serialized), and from the entries that say what served after them: a move the registry
    refused (`state.change_failed`) and a log put right by `mlstack doctor` (a reconciled
    `state.changed`)."""
    # Only these entries change what serves (a model's log is mostly monitoring checks).
    return _history(spine.audit_entries(subject=model, actions=_CHANGES))


def serving_histories(spine: SpineStore, models: Iterable[str]) -> dict[str, list[ServingChange]]:
    """`serving_history` of each of `models`, from one read of the log's state changes (a
    model's entries are those about it or its versions, `model@N`, as there)."""
    entries: dict[str, list[AuditEntry]] = {model: [] for model in models}
    for entry in spine.audit_entries(actions=_CHANGES):
        subject = entry.subject
        for model in {subject, *(subject[:at] for at, c in enumerate(subject) if c == "@")}:
            if model in entries:
                entries[model].append(entry)
    return {model: _history(found) for model, found in entries.items()}


def _history(entries: list[AuditEntry]) -> list[ServingChange]:
    """What served after each of `entries` (one model's state changes, in log order)."""
    changes: list[ServingChange] = []
    current: str | None = None
    never_applied = _never_applied(entries)
    for entry in entries:
        if entry.seq in never_applied:
            continue
        after = _serving_after(entry, current)
        if after != current:
            current = after
            changes.append(ServingChange(entry.at, current, entry.actor, entry.reason))
    return changes


#: The actions `_serving_after` reads; every other entry leaves what serves as it was.
_CHANGES = ("state.changed", "state.change_failed")


def _never_applied(entries: list[AuditEntry]) -> set[int]:
    """Entries of changes the registry never applied, as `mlstack doctor` found them: the
    last `state.changed` of a version before a reconciled one that undoes it (its process
    died between the entry and the registry write). What served then is what the registry
    served: the change is left out of the history, from its own time on."""
    voided: set[int] = set()
    last: dict[str, AuditEntry] = {}
    for entry in entries:
        if entry.action != "state.changed":
            continue
        earlier = last.get(entry.subject)
        if (
            entry.payload.get("reconciled")
            and earlier is not None
            and earlier.payload.get("to") == entry.payload.get("from")
        ):
            voided.add(earlier.seq)
        last[entry.subject] = entry
    return voided


def _serving_after(entry: AuditEntry, current: str | None) -> str | None:
    """The version serving after `entry`, given the one serving before it."""
    payload = entry.payload
    if entry.action in ("state.changed", "state.change_failed") and "serving" in payload:
        serving = payload["serving"]  # the entry says what serves after it (the registry's)
        return serving if isinstance(serving, str) else None
    if entry.action == "state.changed":
        if payload.get("to") == "serving":
            return entry.subject
        if payload.get("from") == "serving" and entry.subject == current:
            return None
    return current


def served_at(spine: SpineStore, model: str, when: datetime) -> str | None:
    """The version (`model@N`) in the registry's `serving` state at `when`, or None: its
    lifecycle state, not traffic (an undeployed endpoint leaves it serving there; what an
    endpoint answered with is `stack.rollout.history.split_at`)."""
    serving: str | None = None
    for change in serving_history(spine, model):
        if change.at > when:
            break
        serving = change.version
    return serving
