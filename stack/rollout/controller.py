"""Deploy, canary, shadow, A/B and rollback: the core decides, the Server role applies.

Every traffic change that happened is an audit entry (`endpoint.routed`, written once the
server made it; a route the server refused is `endpoint.route_failed` and changed nothing),
every rollout leaves `rollout.started` and then `rollout.completed` or `rollout.rolled_back`
with the reasons and the numbers. State changes go through the governance gates like any
promotion: a canary is moved to `canary` through its gate, and only a challenger that held
its SLOs is offered to the `serving` gate (approvals included). A breach routes all traffic
back to the champion, rejects the challenger, and fires `on_rollback`.

Putting a version in front of traffic runs in one order: its gate is decided (without
acting) before any request reaches it, the server change is made, and only once the server
took it is the version's state moved and the deploy audited. A server that cannot start (or
refuses the route) therefore leaves the registry, the audit log and the processes as they
were; a state change refused after the server changed (a veto, a race) undoes the server
change, and both traffic changes are audited, as they happened."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn

from stack.config.rollout import RolloutPlan
from stack.contract.registry import ModelSelector, ModelVersion
from stack.contract.serving import (
    Endpoint,
    HealthReport,
    ProcessInspector,
    Server,
    TrafficSplit,
)
from stack.contract.states import LifecycleState, can_transition
from stack.errors import EndpointDown, GateFailed, InvalidTransition, NotFound, StackError
from stack.governance.history import serving_history
from stack.governance.service import Governance, Selected
from stack.lifecycle import Lifecycle
from stack.orchestration.lease import current_owner
from stack.rollout.judge import judge
from stack.rollout.probes import Probes, probing
from stack.session import StackSession
from stack.spine.lineage import NodeKind, NodeRef

S = LifecycleState


@dataclass(frozen=True, slots=True)
class RolloutResult:
    endpoint: Endpoint
    outcome: str  # deployed | promoted | rolled_back | undecided | ab_running | unchanged
    version: str
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BakeTick:
    """One health check of a bake, as `mlstack deploy` shows it while it waits.

    `stage`: what the traffic is (`canary: 10% to churn@3`); `elapsed_s`/`bake_s`: seconds
    into the bake and its length; `report`: the endpoint's health since the stage began;
    `reasons`: the breaches found (the rollout stops on them); `holds`: why the version
    cannot be judged yet (missing evidence: past the bake the rollout waits, up to the
    plan's max_hold_seconds); `final`: the bake's time is up (checks go on while it holds).
    """

    endpoint: str
    version: str
    stage: str
    elapsed_s: float
    bake_s: float
    report: HealthReport
    reasons: tuple[str, ...]
    final: bool
    holds: tuple[str, ...] = ()


class RolloutController:
    def __init__(
        self,
        session: StackSession,
        *,
        sleep: Callable[[float], None] = time.sleep,
        progress: Callable[[BakeTick], None] | None = None,
    ) -> None:
        """`progress` is called after every health check of a bake (see BakeTick). The
        rollout plan and gates are those of each version's recipe, as the session says."""
        self.session = session
        self.governance = Governance(session)
        self.sleep = sleep
        self.progress = progress
        self._champion_p99: dict[str, float] = {}  # the serving version's, last measured

    @property
    def server(self) -> Server:
        return self.session.server

    # -- deploy ---------------------------------------------------------------------------

    def deploy(
        self, selector: Selected, plan: RolloutPlan | None = None, *, reason: str = ""
    ) -> RolloutResult:
        """Put `selector` (a ModelVersion, `churn@3`, `churn@approved`) in front of traffic as
        `plan` says.

        Strategy `direct` (or shadow and A/B with nothing live to compare with): the version
        must pass the `serving` gate and then takes all traffic. A canary with nothing live
        serves alone in state `canary` for one bake before the `serving` gate. Otherwise the
        version is rolled out beside the version that serves now. Without `plan`, the
        version's recipe's (`StackSession.recipe_for`), else the default one."""
        version = self.governance.version(selector)
        if plan is None:
            recipe = self.session.recipe_for(version, required=False)
            plan = recipe.spec.rollout if recipe else RolloutPlan()
        name = plan.endpoint or version.model
        self.session.emit(
            "on_deploy_requested", subject=version.ref, version=version, endpoint=name
        )
        current = self.find(name)
        if current is None and plan.strategy == "canary":
            return self._first_canary(version, name, plan, reason or "first deploy")
        if current is None or plan.strategy == "direct":
            return self._direct(version, name, current, reason or "deploy")
        champion = _champion(current)
        if champion == version.ref:
            return RolloutResult(current, "unchanged", version.ref)
        # Loaded (and its inputs checked) before the rollout starts: a version the endpoint
        # cannot take fails here and leaves no rollout half begun.
        self.server.add_version(version, endpoint=name)
        self._audit(
            "rollout.started",
            name,
            reason,
            strategy=plan.strategy,
            champion=champion,
            challenger=version.ref,
            plan=plan.model_dump(mode="json"),
            owner=current_owner(),  # judged by `mlstack doctor` if this process dies
        )
        return self._roll_out(version, name, champion, plan)

    def _direct(
        self, version: ModelVersion, name: str, current: Endpoint | None, reason: str
    ) -> RolloutResult:
        """The `serving` gate decided, the server serves the version alone, then the version
        is moved to `serving` and the deploy audited."""
        moving = version.state is not S.SERVING
        if moving:
            self.governance.require(version, S.SERVING, reason=reason)
        started = self.server.deploy(version, endpoint=name)  # raises having changed nothing
        if moving:
            version = self._move_or_undo(
                lambda: self.governance.promote(version, S.SERVING, reason=reason),
                name,
                started,
                current,
            )
        endpoint = self._deployed(
            name, started, version.ref, reason, f"{version.ref} takes all traffic"
        )
        self.session.emit("on_deployed", subject=version.ref, version=version, endpoint=endpoint)
        return RolloutResult(endpoint, "deployed", version.ref)

    def _first_canary(
        self, version: ModelVersion, name: str, plan: RolloutPlan, reason: str
    ) -> RolloutResult:
        """Nothing serves yet: the version takes the traffic in state `canary`, holds its
        SLOs for one bake, and only then is offered to the `serving` gate. A breach (or a
        refusing gate) stops the endpoint and rejects the version: there is nothing to fall
        back to, and an endpoint that failed its bake must not keep answering.

        The rollout starts (`rollout.started`) once the server is ready and the version is
        `canary`: a server that never starts leaves no rollout, no state and no process."""
        entering = version.state is not S.CANARY
        if entering:
            self.governance.require(version, S.CANARY, reason="rollout: canary")
        started = self.server.deploy(version, endpoint=name)  # raises having changed nothing
        if entering:
            version = self._move_or_undo(
                lambda: self.governance.promote(version, S.CANARY, reason="rollout: canary"),
                name,
                started,
                None,
            )
        self._audit(
            "rollout.started",
            name,
            reason,
            strategy="canary",
            champion=None,
            challenger=version.ref,
            plan=plan.model_dump(mode="json"),
            owner=current_owner(),  # judged by `mlstack doctor` if this process dies
        )
        endpoint = self._deployed(
            name, started, version.ref, reason, f"canary: {version.ref} serves alone"
        )
        stage = f"canary: {version.ref} serves alone"
        baked = self._bake(name, version.ref, plan, shadow=False, stage=stage)
        reasons, report = baked.reasons, baked.report
        if baked.outcome == "died":
            self._died(name, None, version, reasons, report)
        if baked.outcome == "undecided":
            self.server.undeploy(name)  # nothing to fall back to: an unjudged canary stops
            self._audit("endpoint.undeployed", name, "undecided: " + "; ".join(reasons))
            return self._undecided(name, None, version, reasons, report, endpoint)
        if not reasons:
            try:
                promoted = self.governance.promote(
                    version, S.SERVING, reason="canary held its SLOs"
                )
            except GateFailed as exc:
                reasons = [f"serving gate: {exc}"]
        if reasons:
            why = "; ".join(reasons)
            self._audit(
                "rollout.rolled_back",
                name,
                why,
                **{"from": version.ref, "to": None, "reasons": reasons, "health": _json(report)},
            )
            self.server.undeploy(name)
            fresh = self.governance.version(version)
            if can_transition(fresh.state, S.REJECTED):
                Lifecycle(self.session).transition(
                    fresh.model, fresh.version, S.REJECTED, reason=f"rolled back: {why}"
                )
            self.session.emit(
                "on_rollback",
                subject=name,
                endpoint=name,
                from_version=version.ref,
                to_version="",
                reason=why,
            )
            return RolloutResult(endpoint, "rolled_back", version.ref, tuple(reasons))
        self._audit("rollout.completed", name, "canary held its SLOs", version=promoted.ref)
        self.session.emit("on_deployed", subject=promoted.ref, version=promoted, endpoint=endpoint)
        return RolloutResult(endpoint, "promoted", promoted.ref)

    def _roll_out(
        self, version: ModelVersion, name: str, champion: str, plan: RolloutPlan
    ) -> RolloutResult:
        """One mechanism for every strategy: enter the state, load the version, then for each
        stage route, bake and judge; the first breach rolls back."""
        state, stages = _stages(plan, champion, version.ref)
        self._enter(version, state)
        report: HealthReport | None = None
        endpoint: Endpoint | None = None
        for stage in stages:
            try:
                endpoint = self._route(name, stage.split, stage.reason)
            except StackError as exc:  # refused by the server: nothing changed
                why = f"{version.ref} could not take its traffic: {_first_line(exc)}"
                return self._roll_back(name, champion, version, [why], report)
            baked = self._bake(
                name, version.ref, plan, shadow=stage.shadow, stage=stage.reason, champion=champion
            )
            reasons, report = baked.reasons, baked.report
            if baked.outcome == "died":
                self._died(name, champion, version, reasons, report)
            if baked.outcome == "undecided":
                return self._undecided(name, champion, version, reasons, report)
            if reasons and self._rejected(version):  # rolled back while it baked
                return RolloutResult(
                    self.find(name) or endpoint, "rolled_back", version.ref, tuple(reasons)
                )
            if reasons:
                return self._roll_back(name, champion, version, reasons, report)
        assert endpoint is not None
        if plan.strategy == "ab":
            self._audit(
                "rollout.ab_running", name, "", challenger=version.ref, health=_json(report)
            )
            return RolloutResult(endpoint, "ab_running", version.ref)
        return self._promote(name, champion, version, report, f"{plan.strategy} held its SLOs")

    # -- rollback ---------------------------------------------------------------------------

    def rollback(
        self,
        model: str,
        *,
        endpoint: str | None = None,
        challenger: str | None = None,
        reason: str = "",
    ) -> RolloutResult:
        """Back to the previous serving version: the champion of a running rollout (from
        `challenger`, or the first one), or else the version that served before the current
        one (moved back to `serving`, audited)."""
        name = endpoint or model
        champion, challengers = self._live(name)
        why = reason or "rolled back by hand"
        if challenger is not None and challenger not in challengers:
            raise StackError(f"{challenger} is not rolling out on endpoint {name!r}")
        if champion is not None and challengers:
            rolled = self.governance.version(challenger or challengers[0])
            return self._roll_back(name, champion, rolled, [why], None)
        history = [c.version for c in serving_history(self.session.spine, model) if c.version]
        now = history[-1] if history else None
        previous = next((ref for ref in reversed(history) if ref != now), None)
        if previous is None:
            raise StackError(f"{model} has no earlier serving version to roll back to")
        target = self.governance.version(previous)
        if not can_transition(target.state, S.SERVING):  # before the server changes
            raise InvalidTransition(
                f"{target.ref} is {target.state.value}; it cannot move back to serving"
            )
        before = self.find(name)
        started = self.server.deploy(target, endpoint=name)  # raises having changed nothing
        self._move_or_undo(
            lambda: Lifecycle(self.session).transition(
                model, target.version, S.SERVING, reason=why
            ),
            name,
            started,
            before,
        )
        deployed = self._deployed(name, started, previous, why, why)
        self._audit("rollout.rolled_back", name, why, **{"from": now, "to": previous})
        self.session.emit(
            "on_rollback",
            subject=name,
            endpoint=name,
            from_version=now or "",
            to_version=previous,
            reason=why,
        )
        return RolloutResult(deployed, "rolled_back", previous, (why,))

    def _roll_back(
        self,
        name: str,
        champion: str,
        challenger: ModelVersion,
        reasons: list[str],
        report: HealthReport | None,
    ) -> RolloutResult:
        why = "; ".join(reasons)
        endpoint = self._to_champion(name, champion, challenger, why, reasons, report)
        self._audit(
            "rollout.rolled_back",
            name,
            why,
            **{"from": challenger.ref, "to": champion, "reasons": reasons, "health": _json(report)},
        )
        fresh = self.governance.version(challenger)
        if can_transition(fresh.state, S.REJECTED):
            Lifecycle(self.session).transition(
                fresh.model, fresh.version, S.REJECTED, reason=f"rolled back: {why}"
            )
        self.session.emit(
            "on_rollback",
            subject=name,
            endpoint=name,
            from_version=challenger.ref,
            to_version=champion,
            reason=why,
        )
        return RolloutResult(endpoint, "rolled_back", challenger.ref, tuple(reasons))

    def _undecided(
        self,
        name: str,
        champion: str | None,
        challenger: ModelVersion,
        reasons: list[str],
        report: HealthReport | None,
        endpoint: Endpoint | None = None,
    ) -> RolloutResult:
        """The evidence never came (see the plan's max_hold_seconds): traffic back to the
        champion (`endpoint`: where it stands when there is none), the challenger back to
        `approved` (neither judged good nor bad), `rollout.undecided` audited."""
        why = "undecided: " + "; ".join(reasons)
        if champion is not None:
            endpoint = self._to_champion(name, champion, challenger, why, reasons, report)
        assert endpoint is not None
        self._back_to_approved(challenger, why)
        self._audit(
            "rollout.undecided",
            name,
            why,
            **{"from": challenger.ref, "to": champion, "reasons": reasons, "health": _json(report)},
        )
        return RolloutResult(endpoint, "undecided", challenger.ref, tuple(reasons))

    def _to_champion(
        self,
        name: str,
        champion: str,
        challenger: ModelVersion,
        why: str,
        reasons: list[str],
        report: HealthReport | None,
    ) -> Endpoint:
        """All traffic to `champion`; an endpoint found dead on the way ends the rollout."""
        try:
            return self._route(name, TrafficSplit({champion: 1.0}), f"rollback: {why}")
        except StackError as exc:
            dead = self._dead(name)
            if dead is None:
                raise
            self._died(name, champion, challenger, [*reasons, dead], report, cause=exc)

    def _died(
        self,
        name: str,
        champion: str | None,
        challenger: ModelVersion,
        reasons: list[str],
        report: HealthReport | None,
        cause: BaseException | None = None,
    ) -> NoReturn:
        """The endpoint stopped running mid-rollout: nothing can be routed or judged. The
        rollout ends truthfully (`rollout.undecided`, the challenger back to `approved`)
        and EndpointDown says what died and what to run."""
        why = "; ".join(reasons)
        self._back_to_approved(challenger, f"rollout stopped: {why}")
        self._audit(
            "rollout.undecided",
            name,
            f"endpoint down: {why}",
            **{"from": challenger.ref, "to": None, "reasons": reasons, "health": _json(report)},
        )
        again = champion or challenger.ref
        raise EndpointDown(
            f"the rollout of {challenger.ref} on {name!r} stopped: {why}. {challenger.ref} is "
            f"back to approved. Run `mlstack undeploy {name}` to clear what is left, then "
            f"`mlstack deploy {again}` to serve it again"
        ) from cause

    def _dead(self, name: str) -> str | None:
        """None while endpoint `name` runs; else what is wrong with it, in a sentence."""
        if self.find(name) is not None:
            return None
        problems: tuple[str, ...] = ()
        if isinstance(self.server, ProcessInspector):
            with contextlib.suppress(Exception):  # the sentence is a courtesy
                problems = self.server.processes(name)[0].problems
        detail = f" ({'; '.join(problems)})" if problems else ""
        return f"endpoint {name!r} is not running{detail}"

    def _back_to_approved(self, version: ModelVersion, why: str) -> None:
        fresh = self.governance.version(version)
        if fresh.state in (S.CANARY, S.SHADOW) and can_transition(fresh.state, S.APPROVED):
            Lifecycle(self.session).transition(fresh.model, fresh.version, S.APPROVED, reason=why)

    # -- helpers ----------------------------------------------------------------------------

    def challengers(self, name: str) -> list[str]:
        """The versions rolling out on endpoint `name` beside its serving version (none when
        nothing serves there, as in a first canary: there is nothing to roll back to)."""
        try:
            champion, challengers = self._live(name)
        except NotFound:
            return []
        return challengers if champion is not None else []

    def _live(self, name: str) -> tuple[str | None, list[str]]:
        """The serving version on the endpoint (answering, or kept at weight 0 while a canary
        takes all the traffic in its last step), and the others that answer or shadow."""
        current = self.find(name)
        if current is None:
            raise NotFound(f"no endpoint {name!r} is deployed")
        weights = current.split.weights
        live = [*(ref for ref, w in weights.items() if w > 0), *current.split.shadows]
        models = {ModelSelector.parse(ref).model for ref in weights}
        registry = self.session.registry
        serving = {v.ref for m in models for v in registry.find_by_state(m, S.SERVING)}
        by_weight = sorted(weights, key=lambda ref: -weights[ref])
        champion = next((ref for ref in by_weight if ref in serving), None)
        return champion, [ref for ref in live if ref != champion]

    def find(self, name: str) -> Endpoint | None:
        return next((e for e in self.server.endpoints() if e.name == name), None)

    def _promote(
        self,
        name: str,
        champion: str,
        version: ModelVersion,
        report: HealthReport | None,
        why: str,
    ) -> RolloutResult:
        """The `serving` gate decided, the version takes all traffic (the old one stays
        loaded at weight 0, as fallback), then the version is moved to `serving`; a refusal
        at any point rolls back to the champion."""
        try:
            self.governance.require(self.governance.version(version), S.SERVING, reason=why)
        except GateFailed as exc:
            return self._roll_back(name, champion, version, [f"serving gate: {exc}"], report)
        # the old champion stays loaded (in a process of its own now) to answer as fallback
        split = TrafficSplit({version.ref: 1.0, champion: 0.0}, champion=version.ref)
        try:
            endpoint = self._route(name, split, f"{version.ref} promoted: {why}")
        except StackError as exc:  # refused by the server: nothing changed
            why_not = f"{version.ref} could not take all traffic: {_first_line(exc)}"
            return self._roll_back(name, champion, version, [why_not], report)
        try:
            promoted = self.governance.promote(version, S.SERVING, reason=why)
        except GateFailed as exc:  # decided again, differently (a race)
            return self._roll_back(name, champion, version, [f"serving gate: {exc}"], report)
        except StackError as exc:  # a veto, a move made meanwhile: back to the champion
            return self._roll_back(name, champion, version, [f"serving: {exc}"], report)
        self._audit("rollout.completed", name, why, version=promoted.ref, health=_json(report))
        self.session.emit("on_deployed", subject=promoted.ref, version=promoted, endpoint=endpoint)
        return RolloutResult(endpoint, "promoted", promoted.ref)

    def _rejected(self, version: ModelVersion | str) -> bool:
        """Rolled back by someone else during the bake (a monitoring policy, a person)."""
        return self.governance.version(version).state is S.REJECTED

    def _enter(self, version: ModelVersion, state: LifecycleState) -> None:
        if version.state is not state:
            self.governance.promote(version, state, reason=f"rollout: {state.value}")

    def _bake(
        self,
        name: str,
        ref: str,
        plan: RolloutPlan,
        *,
        shadow: bool,
        stage: str,
        champion: str | None = None,
    ) -> _Baked:
        """`_watch`, with the controller's own probes of the versions it judges (probes.py;
        a shadow's copies are off the request path: not probed)."""
        judged = [] if shadow else [ref, *([champion] if champion else [])]
        with probing(self.server, name, judged, plan) as probes:
            return self._watch(name, ref, plan, shadow, stage, champion, probes)

    def _watch(
        self,
        name: str,
        ref: str,
        plan: RolloutPlan,
        shadow: bool,
        stage: str,
        champion: str | None,
        probes: Probes | None,
    ) -> _Baked:
        """Watch `ref` for the bake time; the first breach ends the wait. Past the bake, a
        verdict that lacks evidence (too few requests, health unreadable or degraded, an
        endpoint that runs but does not answer its readiness check) holds, checked
        again every check_seconds, for up to plan.max_hold_seconds: then `undecided`. An
        endpoint that stopped running ends the bake at once (`died`)."""
        started = datetime.now(UTC)
        began = time.monotonic()
        deadline = began + plan.bake_seconds
        give_up = deadline + plan.max_hold_seconds
        report = HealthReport(name, ready=False, requests=0, error_rate=0.0, p99_latency_ms=None)
        while True:
            now = time.monotonic()
            final = now >= deadline
            reasons: list[str] = []
            holds: list[str] = []
            try:
                report = self.server.health(name, since=started)
            except Exception as exc:  # no evidence this time: not a verdict either way
                holds.append(f"its health could not be read ({type(exc).__name__}: {exc})")
            dead = self._dead(name) if holds or not report.ready else None
            if dead is not None:
                return _Baked("died", [dead], report)
            if holds:
                pass
            elif self._rejected(ref):
                reasons = [f"{ref} was rejected while it baked (see the audit log)"]
            else:
                verdict = judge(
                    plan.slo,
                    report,
                    ref,
                    champion_p99_ms=self._champion_latency(plan, report, champion),
                    shadow=shadow,
                    final=final,
                    probes=probes.tally() if probes is not None else None,
                    champion=champion,
                )
                reasons, holds = list(verdict.breaches), list(verdict.holds)
                if not report.ready:  # failing outside the app: its figures are unproven
                    holds.append(f"endpoint {name!r} runs but does not answer as ready")
                holds.extend(f"its figures may be short: {why}" for why in report.degraded)
            if self.progress is not None:
                elapsed = min(now - began, plan.bake_seconds)
                self.progress(
                    BakeTick(
                        name,
                        ref,
                        stage,
                        elapsed,
                        plan.bake_seconds,
                        report,
                        tuple(reasons),
                        final,
                        tuple(holds),
                    )
                )
            if reasons:
                return _Baked("breached", reasons, report)
            if final and not holds:
                return _Baked("held", [], report)
            if final and now >= give_up:
                return _Baked("undecided", holds, report)
            self.sleep(min(plan.check_seconds, (give_up if final else deadline) - now))

    def _champion_latency(
        self, plan: RolloutPlan, report: HealthReport, champion: str | None
    ) -> float | None:
        """The champion's p99 in this window when it had enough traffic to tell, else the
        last one measured (at a canary's 100% step the champion answers nothing)."""
        if champion is None:
            return None
        health = report.versions.get(champion)
        if (
            health is not None
            and health.p99_latency_ms is not None
            and health.requests >= max(plan.slo.min_requests, 1)
        ):
            self._champion_p99[champion] = health.p99_latency_ms
        return self._champion_p99.get(champion)

    def _route(self, name: str, split: TrafficSplit, reason: str) -> Endpoint:
        """Route, then audit the change; a route the server refused (and undid) is audited
        as `endpoint.route_failed`, with the split it was asked for."""
        try:
            endpoint = self.server.route(name, split)
        except Exception as exc:
            self._audit(
                "endpoint.route_failed",
                name,
                f"{type(exc).__name__}: {_first_line(exc)}",
                weights=dict(split.weights),
                shadows=list(split.shadows),
                wanted=reason,
            )
            raise
        self._audit_split(name, split, reason)
        return self._link(endpoint)

    def _move_or_undo(
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
            why = f"undone: {type(exc).__name__}: {_first_line(exc)}"
            self._audit_split(name, started.split, f"served while its state was decided ({why})")
            try:
                if before is None:
                    self.server.undeploy(name)
                    self._audit("endpoint.undeployed", name, why)
                else:
                    self._route(name, before.split, why)
            except Exception as undo:
                exc.add_note(f"undoing the server change on {name!r} failed: {undo}")
            raise

    def _deployed(
        self, name: str, endpoint: Endpoint, ref: str, reason: str, routed: str
    ) -> Endpoint:
        """Audit a deploy the server made: `endpoint.deployed`, then the split it serves."""
        self._audit("endpoint.deployed", name, reason, version=ref)
        linked = self._link(endpoint)
        self._audit_split(name, endpoint.split, routed)
        return linked

    def _link(self, endpoint: Endpoint) -> Endpoint:
        """Lineage: each version that answers (or shadows) on this endpoint revision."""
        revision = NodeRef(NodeKind.ENDPOINT_REVISION, f"{endpoint.name}#{endpoint.revision}")
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

    def _audit_split(self, name: str, split: TrafficSplit, reason: str) -> None:
        self._audit(
            "endpoint.routed",
            name,
            reason,
            weights=dict(split.weights),
            shadows=list(split.shadows),
            sticky=split.sticky,
        )

    def _audit(self, action: str, subject: str, reason: str, **payload: Any) -> None:
        self.session.spine.audit(
            actor=self.governance.actor().name,
            action=action,
            subject=f"endpoint:{subject}",
            reason=reason,
            payload=payload,
        )


@dataclass(frozen=True, slots=True)
class _Baked:
    outcome: str  # held | breached | undecided (evidence missing too long) | died
    reasons: list[str]
    report: HealthReport


@dataclass(frozen=True, slots=True)
class _Stage:
    split: TrafficSplit
    reason: str
    shadow: bool = False


def _stages(plan: RolloutPlan, champion: str, ref: str) -> tuple[LifecycleState, list[_Stage]]:
    """The state a challenger enters and the traffic it meets, stage by stage."""
    deadline = plan.deadline_ms()

    def kept(weights: dict[str, float], shadows: tuple[str, ...] = ()) -> TrafficSplit:
        # the champion stays in the server's own process at every stage (also at 100%), the
        # challenger apart from it, on a deadline, until the promotion completes
        ab = plan.strategy == "ab"
        return TrafficSplit(weights, shadows, ab, champion=champion, deadline_ms=deadline)

    if plan.strategy == "shadow":
        split = kept({champion: 1.0}, shadows=(ref,))
        return S.SHADOW, [_Stage(split, f"shadow: {ref} gets a copy of each request", True)]
    if plan.strategy == "ab":
        weights = {champion: round(1.0 - plan.ab_share, 6), ref: plan.ab_share}
        return S.CANARY, [_Stage(kept(weights), f"A/B: {plan.ab_share:.0%} to {ref}")]
    return S.CANARY, [
        _Stage(kept({champion: round(1.0 - share, 6), ref: share}), f"canary: {share:.0%} to {ref}")
        for share in plan.steps
    ]


def _champion(endpoint: Endpoint) -> str:
    return max(endpoint.split.weights, key=lambda ref: endpoint.split.weights[ref])


def _first_line(exc: BaseException) -> str:
    """An error's first line (a server's errors go on with its log)."""
    return str(exc).partition("\n")[0]


def _json(report: HealthReport | None) -> dict[str, Any] | None:
    if report is None:
        return None
    return {
        "requests": report.requests,
        "error_rate": report.error_rate,
        "p99_latency_ms": report.p99_latency_ms,
        "versions": {
            ref: {
                "requests": v.requests,
                "errors": v.errors,
                "p99_latency_ms": v.p99_latency_ms,
                "role": v.role,
                "disagreement": v.disagreement,
            }
            for ref, v in report.versions.items()
        },
    }
