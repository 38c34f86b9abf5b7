"""What a rollout leaves behind when its process dies, found and put back.

A rollout is in progress on an endpoint while its last `rollout.*` audit entry is
`rollout.started` and the process that wrote it (its `owner`) lives; an A/B left running
(`rollout.ab_running`) needs no process. Anything else that takes traffic must be `serving`:
a canary or shadow with no rollout in progress behind it never passed the serving gate.

Putting it back: the endpoint returns to its serving version alone (undeployed when it has
none, as a first canary's rollback does), the rollout is closed with `rollout.rolled_back`,
and versions left in `canary` or `shadow` return to `approved`, the state their gate gave
them before the rollout (not `rejected`: nothing judged them). Each change is audited."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stack.contract.registry import ModelSelector
from stack.contract.serving import Endpoint, Router, TrafficSplit
from stack.contract.states import LifecycleState
from stack.errors import NotFound
from stack.orchestration.lease import Liveness
from stack.rollout.subjects import SUBJECT_PREFIX, endpoint_subject, parse_subject, target_of
from stack.session import StackSession
from stack.spine.audit import AuditEntry

if TYPE_CHECKING:
    from stack.rollout.traffic import EndpointTraffic

S = LifecycleState
_INTERMEDIATE = (S.CANARY, S.SHADOW)
_CLOSED = ("rollout.completed", "rollout.rolled_back", "rollout.undecided")

#: How a rollout's owner (as `rollout.started` recorded it) is judged, at the entry's time.
OwnerJudge = Callable[[Mapping[str, Any] | None, AuditEntry], Liveness]


@dataclass(frozen=True, slots=True)
class StrandedEndpoint:
    """An endpoint whose traffic no live rollout accounts for."""

    endpoint: Endpoint
    champion: str | None  # its serving version, if one is loaded there
    stranded: tuple[str, ...]  # versions taking traffic without being `serving`
    open_rollout: AuditEntry | None  # a `rollout.started` whose owner is gone
    fallback: str | None = None  # with no champion there: the model's serving version

    def describe(self) -> str:
        parts = []
        if self.open_rollout is not None:
            owner = self.open_rollout.payload.get("owner") or {}
            who = f"pid {owner.get('pid')} on {owner.get('host')}" if owner else "no owner"
            parts.append(f"rollout started {self.open_rollout.at:%Y-%m-%d %H:%M:%S} ({who}) died")
        if self.stranded:
            weights = self.endpoint.split.weights
            parts.append(
                ", ".join(
                    f"{ref} takes {weights.get(ref, 0.0):.0%}"
                    + (" (shadow)" if ref in self.endpoint.split.shadows else "")
                    for ref in self.stranded
                )
                + " without passing the serving gate"
            )
        return "; ".join(parts)

    @property
    def challenger(self) -> str | None:
        """The version the open rollout was putting in front of traffic, if it says."""
        if self.open_rollout is None:
            return None
        named = self.open_rollout.payload.get("challenger")
        return named if isinstance(named, str) else None

    @property
    def promoted(self) -> bool:
        """The rollout got as far as promoting its challenger: only its end is missing."""
        if self.stranded or self.champion is None:
            return False
        return self.challenger is None or self.challenger == self.champion

    @property
    def abandoned(self) -> bool:
        """The rollout died before its challenger took any traffic: the champion it started
        from still serves alone, and the rollout only needs closing."""
        return not self.stranded and self.champion is not None and not self.promoted

    def remedy(self) -> str:
        if self.promoted:
            return f"close the rollout ({self.champion} was promoted before its process died)"
        if self.abandoned:
            return (
                f"close the rollout ({self.challenger} never took traffic; {self.champion} serves)"
            )
        if self.champion is not None:
            return f"route all traffic back to {self.champion}"
        if self.fallback is not None:
            return f"serve {self.fallback} on it (the model's serving version)"
        return "undeploy the endpoint (no serving version to fall back to)"


@dataclass(frozen=True, slots=True)
class StrandedVersion:
    """A version in `canary` or `shadow` with no rollout in progress behind it."""

    ref: str
    state: LifecycleState


class RolloutRecovery:
    """Finds endpoints and versions a dead rollout left, and puts them back."""

    def __init__(
        self, session: StackSession, owner_liveness: OwnerJudge, router: Router | None = None
    ) -> None:
        """`router`: where the endpoints run (the cluster's); None: the stack's server."""
        self.session = session
        self.owner_liveness = owner_liveness
        self._router = router

    @property
    def router(self) -> Router:
        return self._router if self._router is not None else self.session.server

    # -- finding --------------------------------------------------------------------------

    def stranded_endpoints(self) -> list[StrandedEndpoint]:
        found = []
        for endpoint in self.router.endpoints():
            last = self._last_rollout(endpoint.name)
            if last is not None and self._in_progress(last):
                continue
            states = self._states([*endpoint.split.weights, *endpoint.split.shadows])
            ab = _ab_challenger(last)
            taking = [r for r, w in endpoint.split.weights.items() if w > 0]
            stranded = tuple(
                ref
                for ref in dict.fromkeys([*taking, *endpoint.split.shadows])
                if states.get(ref) is not S.SERVING
                and not (ref == ab and states.get(ref) is S.CANARY)
            )
            open_rollout = last if last is not None and last.action == "rollout.started" else None
            if stranded or open_rollout is not None:
                champion = next(
                    (r for r in endpoint.split.weights if states.get(r) is S.SERVING), None
                )
                fallback = None if champion is not None else self._serving_of(stranded)
                found.append(StrandedEndpoint(endpoint, champion, stranded, open_rollout, fallback))
        return found

    def unjudged_rollouts(self) -> list[tuple[str, AuditEntry, Liveness]]:
        """Rollouts in progress whose owner cannot be judged from here (another host that
        stopped renewing, or no owner recorded): left alone, but worth a look."""
        found: list[tuple[str, AuditEntry, Liveness]] = []
        for endpoint in self.router.endpoints():
            last = self._last_rollout(endpoint.name)
            if last is None or last.action != "rollout.started":
                continue
            liveness = self.owner_liveness(last.payload.get("owner"), last)
            if liveness in (Liveness.STALE, Liveness.UNKNOWN):
                found.append((endpoint.name, last, liveness))
        return found

    def stranded_versions(self) -> list[StrandedVersion]:
        """Versions whose last audited move put them in `canary` or `shadow` (every move
        mlstack makes is audited), still there in the registry, and held by no rollout in
        progress. The registry is asked only about those."""
        last_move: dict[str, str] = {}
        for entry in self.session.spine.audit_entries(action="state.changed"):
            last_move[entry.subject] = str(entry.payload.get("to"))
        suspects = [ref for ref, to in last_move.items() if to in _INTERMEDIATE]
        if not suspects:
            return []
        held = self._held()
        states = self._states([ref for ref in suspects if ref not in held])
        return [
            StrandedVersion(ref, state) for ref, state in states.items() if state in _INTERMEDIATE
        ]

    # -- repairing ------------------------------------------------------------------------

    def restore_endpoint(self, stranded: StrandedEndpoint, reason: str) -> str:
        """The endpoint back to its serving version alone (or stopped), the rollout closed."""
        from stack.governance.service import Governance
        from stack.rollout.traffic import EndpointTraffic

        traffic = EndpointTraffic(self.session, Governance(self.session), self._router)
        name = stranded.endpoint.name
        why = f"{reason}: {stranded.describe()}"
        self._record_unrecorded_split(traffic, stranded.endpoint)
        if stranded.promoted:
            traffic.audit(
                "rollout.completed",
                name,
                f"{why}, after {stranded.champion} was promoted",
                version=stranded.champion,
            )
            return f"closed the rollout on {name}: {stranded.champion} serves"
        # an abandoned rollout strands nothing: what it undoes is the challenger it named
        undone = [stranded.challenger] if stranded.abandoned else list(stranded.stranded)
        traffic.audit(
            "rollout.rolled_back",
            name,
            why,
            **{"from": undone, "to": stranded.champion or stranded.fallback, "reasons": [why]},
        )
        if stranded.champion is None and stranded.fallback is not None:
            serving = self.session.registry.get_version(*_model_and_number(stranded.fallback))
            started = self.router.deploy(serving, endpoint=name)
            traffic.deployed(name, started, serving.ref, why, f"{serving.ref} takes all traffic")
            outcome = f"endpoint {name}: {serving.ref} (the serving version) serves alone"
        elif stranded.champion is None:
            self.router.undeploy(name)
            traffic.audit("endpoint.undeployed", name, why)
            outcome = f"undeployed endpoint {name}"
        else:
            target = TrafficSplit({stranded.champion: 1.0})
            if stranded.endpoint.split != target:
                traffic.route(name, target, f"rollback: {why}")
            outcome = f"endpoint {name}: all traffic to {stranded.champion}"
        self.session.emit(
            "on_rollback",
            subject=name,
            endpoint=name,
            from_version=", ".join(stranded.stranded),
            to_version=stranded.champion or stranded.fallback or "",
            reason=why,
        )
        return outcome

    def restore_version(self, stranded: StrandedVersion, reason: str) -> str:
        """Back to `approved` through the lifecycle (audited, offered to the hooks)."""
        from stack.lifecycle import Lifecycle

        Lifecycle(self.session).transition(
            *_model_and_number(stranded.ref),
            S.APPROVED,
            reason=f"{reason}: {stranded.ref} was left {stranded.state.value} with no rollout "
            "in progress",
        )
        return f"{stranded.ref}: {stranded.state.value} -> approved"

    # -- helpers ----------------------------------------------------------------------------

    def _record_unrecorded_split(self, traffic: EndpointTraffic, endpoint: Endpoint) -> None:
        """A split the server serves that the log does not hold as the last change (the
        process that made it died between the server's change and its audit entry) is
        audited as found, so the history shows what served before the repair."""
        from stack.rollout.history import routing_history

        target = target_of(self.session, self._router)
        changes = routing_history(self.session.spine, endpoint.name, target)
        split = endpoint.split

        def shares(weights: Mapping[str, float]) -> dict[str, float]:
            return {ref: round(w, 4) for ref, w in weights.items() if w > 0}

        last = changes[-1] if changes else None
        if last is not None and (shares(last.weights), set(last.shadows)) == (
            shares(split.weights),
            set(split.shadows),
        ):
            return
        traffic.audit_split(
            endpoint.name,
            split,
            "found serving on the endpoint, not on record: the process that routed it ended "
            "before recording it",
        )

    def _last_rollout(self, endpoint: str) -> AuditEntry | None:
        subject = endpoint_subject(endpoint, target_of(self.session, self._router))
        entries = self.session.spine.audit_entries(subject=subject)
        rollouts = [e for e in entries if e.action.startswith("rollout.")]
        return rollouts[-1] if rollouts else None

    def _in_progress(self, last: AuditEntry) -> bool:
        """A rollout that still has a process behind it (or cannot be judged from here)."""
        if last.action != "rollout.started":
            return False
        return self.owner_liveness(last.payload.get("owner"), last) is not Liveness.DEAD

    def _held(self) -> set[str]:
        """Versions a rollout in progress (or an A/B left running) stands behind; on
        another target's endpoints (the cluster's, seen from this machine, or this
        machine's from the cluster's doctor) every rollout the log leaves open, dead or
        alive: that target's doctor judges it, with the split it sees."""
        held = self._held_elsewhere()
        for endpoint in self.router.endpoints():
            last = self._last_rollout(endpoint.name)
            if last is None or last.action in _CLOSED:
                continue
            if last.action == "rollout.ab_running" or self._in_progress(last):
                held.add(str(last.payload.get("challenger")))
                held.update(endpoint.split.weights)
                held.update(endpoint.split.shadows)
        return held

    def _held_elsewhere(self) -> set[str]:
        here = target_of(self.session, self._router)
        last: dict[str, AuditEntry] = {}
        for entry in self.session.spine.audit_entries(subject_prefix=SUBJECT_PREFIX):
            if entry.action.startswith("rollout."):
                last[entry.subject] = entry
        return {
            str(entry.payload.get("challenger"))
            for subject, entry in last.items()
            if entry.action not in _CLOSED
            and (parsed := parse_subject(subject)) is not None
            and parsed[0] != here
        }

    def _serving_of(self, stranded: tuple[str, ...]) -> str | None:
        """The registry's serving version of the one model `stranded` are versions of."""
        models = {ModelSelector.parse(ref).model for ref in stranded}
        if len(models) != 1:
            return None
        serving = self.session.registry.find_by_state(models.pop(), S.SERVING)
        return serving[0].ref if serving else None

    def _states(self, refs: list[str]) -> dict[str, LifecycleState]:
        registry = self.session.registry
        states: dict[str, LifecycleState] = {}
        for ref in refs:
            selector = ModelSelector.parse(ref)
            if selector.version is None:
                continue
            try:
                states[ref] = registry.get_version(selector.model, selector.version).state
            except NotFound:
                continue
        return states


def _ab_challenger(last: AuditEntry | None) -> str | None:
    """The challenger of an A/B test left running (it needs no process behind it)."""
    if last is None or last.action != "rollout.ab_running":
        return None
    return str(last.payload.get("challenger"))


def _model_and_number(ref: str) -> tuple[str, int]:
    selector = ModelSelector.parse(ref)
    assert selector.version is not None  # a version's own ref
    return selector.model, selector.version
