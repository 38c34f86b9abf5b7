"""What served when, read from the audit log (every state change is one entry in it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from stack.spine.store import SpineStore


@dataclass(frozen=True, slots=True)
class ServingChange:
    at: datetime
    version: str | None  # None: nothing served from then on
    actor: str
    reason: str


def serving_history(spine: SpineStore, model: str) -> list[ServingChange]:
    """Every moment the serving version of `model` changed, oldest first."""
    changes: list[ServingChange] = []
    current: str | None = None
    for entry in spine.audit_entries(subject=model, action="state.changed"):
        moved_in = entry.payload.get("to") == "serving"
        moved_out = entry.payload.get("from") == "serving" and entry.subject == current
        if moved_in:
            current = entry.subject
        elif moved_out:
            current = None
        else:
            continue
        changes.append(ServingChange(entry.at, current, entry.actor, entry.reason))
    return changes


def served_at(spine: SpineStore, model: str, when: datetime) -> str | None:
    """The version (`model@N`) that served at `when`, or None."""
    serving: str | None = None
    for change in serving_history(spine, model):
        if change.at > when:
            break
        serving = change.version
    return serving
