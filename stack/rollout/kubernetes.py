"""The cluster path: `mlstack deploy --target kubernetes --dry-run` prints the manifests a
rollout plan's first step applies (what a canary, shadow or A/B looks like on the cluster);
without --dry-run, and for `rollout status`, `rollback` and `undeploy --target kubernetes`,
`router_for` gives the RolloutController the cluster's Router in place of the local one."""

from __future__ import annotations

from typing import cast

import yaml

from stack.config.rollout import RolloutPlan
from stack.contract.capabilities import ServerCapability
from stack.contract.registry import ModelVersion
from stack.contract.serving import ClusterManifests, Router, TrafficSplit
from stack.contract.states import LifecycleState
from stack.errors import CapabilityMissing
from stack.plugins.capabilities import declares
from stack.rollout.subjects import TARGETS
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


def _cluster(session: StackSession) -> ClusterManifests:
    if not declares(session, ServerCapability.KUBERNETES):
        raise CapabilityMissing(
            f"the stack's server ({type(session.server).__name__}) cannot render Kubernetes "
            "manifests (the `kubernetes` capability)"
        )
    return cast(ClusterManifests, session.server)  # the registry checked it


def router_for(session: StackSession, target: str) -> Router:
    """Where endpoints run: `local` (the stack's server on this machine) or `kubernetes`
    (the cluster the kubeconfig names, through the server's ClusterManifests)."""
    if target == "local":
        return session.server
    if target == "kubernetes":
        return _cluster(session).cluster_router()
    raise ValueError(f"unknown serving target {target!r}: one of {', '.join(TARGETS)}")


def render_manifests(session: StackSession, version: ModelVersion, plan: RolloutPlan) -> str:
    server = _cluster(session)
    serving = session.registry.find_by_state(version.model, LifecycleState.SERVING)
    champion = serving[0] if serving else None
    split = first_split(plan, version.ref, champion.ref if champion else None)
    versions = [version] if champion is None or champion.ref == version.ref else [champion, version]
    objects = server.manifests(plan.endpoint or version.model, versions, split)
    return yaml.dump_all(objects, Dumper=_Whole, sort_keys=False)


class _Whole(yaml.SafeDumper):
    """Each object written whole: no `&id001` anchors or `*id001` aliases where two objects
    share a value (a reader, kubectl or a person, sees every field where it applies)."""

    def ignore_aliases(self, data: object) -> bool:
        return True
