"""Traffic changes on an endpoint, each audited as it happened and linked in lineage: a
route (or the refusal of one), a deploy, a server change undone because the version's state
could not follow it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from stack.contract.capabilities import ServerCapability
from stack.contract.registry import ModelSelector, ModelVersion
from stack.contract.serving import Endpoint, ProcessInspector, Router, TrafficSplit
from stack.errors import StackError
from stack.governance.service import Governance
from stack.plugins.capabilities import declares
from stack.rollout.history import TRAFFIC_CHANGES
from stack.rollout.results import first_line
from stack.rollout.subjects import (
    LOCAL,
    SUBJECT_PREFIX,
    Target,
    endpoint_key,
    endpoint_subject,
    parse_subject,
    target_of,
)
from stack.session import StackSession
from stack.spine.audit import AuditEntry
from stack.spine.lineage import NodeKind, NodeRef
from stack.spine.store import SpineStore


def live_elsewhere(
    endpoints: Iterable[Endpoint],
    version: ModelVersion,
    *,
    besides: str | None = None,
    others: Mapping[str, Mapping[str, float]] | None = None,
) -> list[str]:
    """`endpoint (ref)` for each endpoint but `besides` on which a version of `version`'s
    model other than it takes traffic: `endpoints` of the router at hand, and `others`
    (`label -> weights`: the other target's endpoints, `EndpointTraffic.other_targets`). A
    model has one `serving` version: moving `version` there while these answer would leave
    them serving a retired version (and `doctor` would find a version serving without its
    gate). Empty: nothing stands in the way."""
    splits = [(e.name, e.split.weights) for e in endpoints if e.name != besides]
    splits += list((others or {}).items())
    found = []
    for label, weights in splits:
        for ref, weight in weights.items():
            same_model = ModelSelector.parse(ref).model == version.model
            if weight > 0 and ref != version.ref and same_model:
                found.append(f"{label} ({ref})")
    return found


def refuse_if_live_elsewhere(
    endpoints: Iterable[Endpoint],
    version: ModelVersion,
    *,
    besides: str | None = None,
    others: Mapping[str, Mapping[str, float]] | None = None,
) -> None:
    """Raise StackError naming each endpoint `live_elsewhere` finds, and what to do."""
    elsewhere = live_elsewhere(endpoints, version, besides=besides, others=others)
    if elsewhere:
        where = f"on endpoint {besides!r}" if besides else "to serving"
        raise StackError(
            f"{version.ref} cannot move {where}: {', '.join(elsewhere)} serves another "
            f"version of {version.model}, and a model has one serving version; roll "
            f"{version.ref} out on that endpoint (mlstack deploy {version.ref} --endpoint "
            "NAME [--target kubernetes]), or undeploy it first"
        )


def recorded_elsewhere(spine: SpineStore, here: Target) -> dict[str, Mapping[str, float]]:
    """`NAME on TARGET -> weights` for each endpoint of a target other than `here`, with the
    split the audit log last recorded for it (`endpoint.routed`, not undeployed since):
    what this machine knows of the cluster's endpoints without reaching the cluster."""
    last: dict[str, AuditEntry] = {}
    for entry in spine.audit_entries(subject_prefix=SUBJECT_PREFIX, actions=TRAFFIC_CHANGES):
        last[entry.subject] = entry
    found: dict[str, Mapping[str, float]] = {}
    for subject, entry in last.items():
        parsed = parse_subject(subject)
        if parsed is None or parsed[0] == here or entry.action != "endpoint.routed":
            continue
        weights = dict(entry.payload.get("weights") or {})
        found[f"{parsed[1]} on {parsed[0]}"] = {str(k): float(v) for k, v in weights.items()}
    return found


class EndpointTraffic:
    """A router (the session's server unless another is given: the cluster's), every
    change it makes audited as the governance's actor."""

    def __init__(
        self, session: StackSession, governance: Governance, router: Router | None = None
    ) -> None:
        self.session = session
        self.governance = governance
        self.router = router
        #: Where the endpoints run: their events are recorded under it (stack.rollout.subjects).
        self.target = target_of(session, router)

    @property
    def server(self) -> Router:
        return self.router if self.router is not None else self.session.server

    @property
    def local(self) -> bool:
        """Whether the router is the stack's own server (its optional protocols apply)."""
        return self.target == LOCAL

    def other_targets(self) -> dict[str, Mapping[str, float]]:
        """What answers on the other target's endpoints (`label -> weights`): the cluster's
        as the audit log last recorded them (a deploy here does not reach the cluster); this
        machine's as its server finds them."""
        if self.local:
            return recorded_elsewhere(self.session.spine, LOCAL)
        return {
            f"{e.name} on this machine": e.split.weights for e in self.session.server.endpoints()
        }

    def find(self, name: str) -> Endpoint | None:
        return next((e for e in self.server.endpoints() if e.name == name), None)

    def dead(self, name: str) -> str | None:
        """None while endpoint `name` runs; else what is wrong with it, in a sentence."""
        if self.find(name) is not None:
            return None
        problems: tuple[str, ...] = ()
        if self.local and declares(self.session, ServerCapability.PROCESSES):
            inspector = cast(ProcessInspector, self.server)  # the registry checked it
            with contextlib.suppress(Exception):  # the sentence is a courtesy
                problems = inspector.processes(name)[0].problems
        detail = f" ({'; '.join(problems)})" if problems else ""
        return f"endpoint {name!r} is not running{detail}"

    def route(self, name: str, split: TrafficSplit, reason: str) -> Endpoint:
        """Route, then audit the change; a route the server refused (and undid) is audited
        as `endpoint.route_failed`, with the split it was asked for."""
        try:
            endpoint = self.server.route(name, split)
        except Exception as exc:
            self.audit(
                "endpoint.route_failed",
                name,
                f"{type(exc).__name__}: {first_line(exc)}",
                weights=dict(split.weights),
                shadows=list(split.shadows),
                wanted=reason,
            )
            raise
        self.audit_split(name, split, reason)
        return self.link(endpoint)

    def move_or_undo(
        self,
        move: Callable[[], ModelVersion],
        name: str,
        started: Endpoint,
        before: Endpoint | None,
    ) -> ModelVersion:
        """Move the version now that the server serves it; if the move fails, put the
        endpoint back as it was `before` (stopped when there was none). Both traffic changes
        happened, so both are audited."""
        try:
            return move()
        except BaseException as exc:
            why = f"undone: {type(exc).__name__}: {first_line(exc)}"
            self.audit_split(name, started.split, f"served while its state was decided ({why})")
            try:
                if before is None:
                    self.server.undeploy(name)
                    self.audit("endpoint.undeployed", name, why)
                else:
                    self.route(name, before.split, why)
            except Exception as undo:
                exc.add_note(f"undoing the server change on {name!r} failed: {undo}")
            raise

    def deployed(
        self, name: str, endpoint: Endpoint, ref: str, reason: str, routed: str
    ) -> Endpoint:
        """Audit a deploy the server made: `endpoint.deployed`, then the split it serves."""
        self.audit("endpoint.deployed", name, reason, version=ref)
        linked = self.link(endpoint)
        self.audit_split(name, endpoint.split, routed)
        return linked

    def link(self, endpoint: Endpoint) -> Endpoint:
        """Lineage: each version that answers (or shadows) on this endpoint revision."""
        key = endpoint_key(endpoint.name, self.target)
        revision = NodeRef(NodeKind.ENDPOINT_REVISION, f"{key}#{endpoint.revision}")
        for ref, weight in endpoint.split.weights.items():
            if weight > 0:
                self.session.spine.link(
                    NodeRef(NodeKind(self.session.version_kind), ref),
                    revision,
                    "served_by",
                    attributes={revision: {"url": endpoint.url}},
                )
        for ref in endpoint.split.shadows:
            self.session.spine.link(
                NodeRef(NodeKind(self.session.version_kind), ref), revision, "shadowed_by"
            )
        return endpoint

    def audit_split(self, name: str, split: TrafficSplit, reason: str) -> None:
        self.audit(
            "endpoint.routed",
            name,
            reason,
            weights=dict(split.weights),
            shadows=list(split.shadows),
            sticky=split.sticky,
        )

    def audit(self, action: str, subject: str, reason: str, **payload: Any) -> None:
        self.session.spine.audit(
            actor=self.governance.actor().name,
            action=action,
            subject=endpoint_subject(subject, self.target),
            reason=reason,
            payload=payload,
        )
