"""`mlstack deploy --target kubernetes --dry-run`: the manifests the cluster path applies for a
rollout plan's first step (what a canary, shadow or A/B looks like on the cluster)."""

from __future__ import annotations

from typing import cast

import yaml

from stack.config.rollout import RolloutPlan
from stack.contract.capabilities import ServerCapability
from stack.contract.registry import ModelVersion
from stack.contract.serving import ClusterManifests, TrafficSplit
from stack.contract.states import LifecycleState
from stack.errors import CapabilityMissing
from stack.plugins.capabilities import declares
from stack.session import StackSession


def first_split(plan: RolloutPlan, version: str, champion: str | None) -> TrafficSplit:
    """The traffic split a plan starts with (all to `version` when nothing serves yet)."""
    if champion is None or champion == version or plan.strategy == "direct":
        return TrafficSplit({version: 1.0})
    if plan.strategy == "shadow":
        return TrafficSplit({champion: 1.0}, shadows=(version,))
    share = plan.ab_share if plan.strategy == "ab" else plan.steps[0]
    if share >= 1.0:
        return TrafficSplit({version: 1.0})
    weights = {champion: round(1.0 - share, 6), version: share}
    return TrafficSplit(weights, sticky=plan.strategy == "ab")


def render_manifests(session: StackSession, version: ModelVersion, plan: RolloutPlan) -> str:
    if not declares(session, ServerCapability.KUBERNETES):
        raise CapabilityMissing(
            f"the stack's server ({type(session.server).__name__}) cannot render Kubernetes "
            "manifests (the `kubernetes` capability)"
        )
    server = cast(ClusterManifests, session.server)  # the registry checked it
    serving = session.registry.find_by_state(version.model, LifecycleState.SERVING)
    champion = serving[0] if serving else None
    split = first_split(plan, version.ref, champion.ref if champion else None)
    versions = [version] if champion is None or champion.ref == version.ref else [champion, version]
    objects = server.manifests(plan.endpoint or version.model, versions, split)
    return yaml.safe_dump_all(objects, sort_keys=False)
