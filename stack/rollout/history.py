"""What each endpoint answered with, and when: read back from the audit log's
`endpoint.routed` entries (written once each traffic change is made)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from stack.rollout.subjects import LOCAL, Target, endpoint_subject
from stack.spine.store import SpineStore


@dataclass(frozen=True, slots=True)
class RoutedSplit:
    at: datetime
    weights: dict[str, float]
    shadows: tuple[str, ...]
    reason: str
    actor: str


def routing_history(spine: SpineStore, endpoint: str, target: Target = LOCAL) -> list[RoutedSplit]:
    """Every traffic change of `endpoint` on `target`, oldest first."""
    return [
        RoutedSplit(
            at=entry.at,
            weights={str(k): float(v) for k, v in dict(entry.payload.get("weights", {})).items()},
            shadows=tuple(entry.payload.get("shadows", ())),
            reason=entry.reason,
            actor=entry.actor,
        )
        for entry in spine.audit_entries(
            subject=endpoint_subject(endpoint, target), action="endpoint.routed"
        )
    ]


def split_at(
    spine: SpineStore, endpoint: str, when: datetime, target: Target = LOCAL
) -> RoutedSplit | None:
    """The traffic split in force at `when`, or None before the first deploy."""
    current = None
    for routed in routing_history(spine, endpoint, target):
        if routed.at > when:
            break
        current = routed
    return current
