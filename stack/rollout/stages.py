"""The traffic a challenger meets, stage by stage, for each rollout strategy."""

from __future__ import annotations

from dataclasses import dataclass

from stack.config.rollout import RolloutPlan
from stack.contract.serving import Endpoint, TrafficSplit
from stack.contract.states import LifecycleState

S = LifecycleState


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage: the split to route, why (as audited), and whether the challenger only
    shadows."""

    split: TrafficSplit
    reason: str
    shadow: bool = False


def stages_of(plan: RolloutPlan, champion: str, ref: str) -> tuple[LifecycleState, list[Stage]]:
    """The state a challenger enters and the traffic it meets, stage by stage."""
    deadline = plan.deadline_ms()

    def kept(weights: dict[str, float], shadows: tuple[str, ...] = ()) -> TrafficSplit:
        # the champion stays in the server's own process at every stage (also at 100%), the
        # challenger apart from it, on a deadline, until the promotion completes
        ab = plan.strategy == "ab"
        return TrafficSplit(weights, shadows, ab, champion=champion, deadline_ms=deadline)

    if plan.strategy == "shadow":
        split = kept({champion: 1.0}, shadows=(ref,))
        return S.SHADOW, [Stage(split, f"shadow: {ref} gets a copy of each request", True)]
    if plan.strategy == "ab":
        weights = {champion: round(1.0 - plan.ab_share, 6), ref: plan.ab_share}
        return S.CANARY, [Stage(kept(weights), f"A/B: {plan.ab_share:.0%} to {ref}")]
    return S.CANARY, [
        Stage(kept({champion: round(1.0 - share, 6), ref: share}), f"canary: {share:.0%} to {ref}")
        for share in plan.steps
    ]


def champion_of(endpoint: Endpoint) -> str:
    """The version with the most traffic on `endpoint` (its serving version)."""
    return max(endpoint.split.weights, key=lambda ref: endpoint.split.weights[ref])
