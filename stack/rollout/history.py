"""What each endpoint answered with, and when: read back from the audit log's
`endpoint.routed` entries (written once each traffic change is made) and its
`endpoint.undeployed` ones (the endpoint stopped: from then on nothing took its traffic)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from stack.rollout.subjects import LOCAL, Target, endpoint_subject
from stack.spine.store import SpineStore

#: The entries that change what an endpoint answers with.
TRAFFIC_CHANGES = ("endpoint.routed", "endpoint.undeployed")


@dataclass(frozen=True, slots=True)
class RoutedSplit:
    """One traffic change: the split from `at` on, or (`stopped`) the endpoint stopped, so
    that nothing took its traffic from `at` until a later deploy."""

    at: datetime
    weights: dict[str, float]
    shadows: tuple[str, ...]
    reason: str
    actor: str
    stopped: bool = False

    @property
    def why(self) -> str:
        """Why the change was made; for a stop without a reason, who stopped it."""
        return stop_reason(self.reason, self.actor) if self.stopped else self.reason


def stop_reason(reason: str, actor: str) -> str:
    """Why an endpoint was stopped (its `endpoint.undeployed` entry), in a few words."""
    return reason or f"undeployed by {actor}"


def routing_history(spine: SpineStore, endpoint: str, target: Target = LOCAL) -> list[RoutedSplit]:
    """Every traffic change of `endpoint` on `target` (stops included), oldest first."""
    return [
        RoutedSplit(
            at=entry.at,
            weights={str(k): float(v) for k, v in dict(entry.payload.get("weights", {})).items()},
            shadows=tuple(entry.payload.get("shadows", ())),
            reason=entry.reason,
            actor=entry.actor,
            stopped=entry.action == "endpoint.undeployed",
        )
        for entry in spine.audit_entries(
            subject=endpoint_subject(endpoint, target), actions=TRAFFIC_CHANGES
        )
    ]


def split_at(
    spine: SpineStore, endpoint: str, when: datetime, target: Target = LOCAL
) -> RoutedSplit | None:
    """The traffic change in force at `when` (a `stopped` one: nothing took traffic then),
    or None before the first deploy."""
    current = None
    for routed in routing_history(spine, endpoint, target):
        if routed.at > when:
            break
        current = routed
    return current
