"""Deploy, canary, shadow, A/B and rollback: the core decides, a Router applies (the
stack's server on this machine, or the cluster's: one controller for both).

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
import dataclasses
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import cast

from stack.config.recipe_file import Recipe
from stack.config.rollout import RolloutPlan
from stack.contract.registry import ModelSelector, ModelVersion
from stack.contract.serving import Endpoint, HealthReport, RolloutHold, Router, TrafficSplit
from stack.contract.states import LifecycleState, can_transition
from stack.errors import (
    GateFailed,
    InvalidTransition,
    LockTimeout,
    NotFound,
    RolloutInProgress,
    StackError,
)
from stack.governance.gates import GateDecision
from stack.governance.history import ServingChange, serving_history
from stack.governance.service import Governance, Selected
from stack.interrupts import Terminated
from stack.lifecycle import Lifecycle
from stack.orchestration.lease import current_owner
from stack.rollout.bake import Baker
from stack.rollout.endings import RolloutEndings
from stack.rollout.results import BakeTick, RolloutResult, first_line, health_json
from stack.rollout.stages import Stage, champion_of, stages_of
from stack.rollout.subjects import endpoint_subject
from stack.rollout.traffic import EndpointTraffic, refuse_if_live_elsewhere
from stack.session import StackSession

__all__ = ["BakeTick", "RolloutController", "RolloutResult"]

S = LifecycleState


class RolloutController:
    """Deploys, rollouts and rollbacks on the session's server (see the module's doc): the
    stages and verdicts here, the bake in `Baker`, the audited traffic changes in
    `EndpointTraffic`, the ways a rollout stops short in `RolloutEndings`."""

    def __init__(
        self,
        session: StackSession,
        recipe: Recipe | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        progress: Callable[[BakeTick], None] | None = None,
        router: Router | None = None,
    ) -> None:
        """`progress` is called after every health check of a bake (see BakeTick). The
        rollout plan and gates are those of each version's recipe, as the session says
        (`recipe` is deprecated: passed, the session is viewed as owning it). `router`: where
        the versions run (the cluster's, `stack.rollout.kubernetes.router_for`); None: the
        stack's server, on this machine."""
        if recipe is not None:  # a view (a prompt registry's) is kept as it is
            session = session.for_recipe(recipe, "RolloutController")
        self.session = session
        self.governance = Governance(session)
        self.traffic = EndpointTraffic(session, self.governance, router)
        self.baker = Baker(self.traffic, self.governance, sleep=sleep, progress=progress)
        self.endings = RolloutEndings(session, self.governance, self.traffic)

    @property
    def server(self) -> Router:
        return self.traffic.server

    def deploy(
        self, selector: Selected, plan: RolloutPlan | None = None, *, reason: str = ""
    ) -> RolloutResult:
        """Put `selector` (a ModelVersion, `churn@3`, `churn@approved`) in front of traffic as
        `plan` says.

        Strategy `direct` (or shadow and A/B with nothing live to compare with): the version
        must pass the `serving` gate and then takes all traffic. A canary of a model with no
        `serving` version serves alone in state `canary` for one bake before the `serving`
        gate. Otherwise the version is rolled out beside the version that serves now (started
        again first on a stopped endpoint). Without `plan`, the
        version's recipe's (`StackSession.recipe_for`), else the default one.

        One deploy at a time per endpoint, from any process or machine sharing the spine
        (see `_exclusive`): while another runs, RolloutInProgress, naming it, before anything
        changes. What a rollout whose process died left on the endpoint is put back first, as
        `mlstack doctor --repair` would (`RolloutResult.repaired` says what)."""
        version = self.governance.version(selector)
        if plan is None:
            recipe = self.session.recipe_for(version, required=False)
            plan = recipe.spec.rollout if recipe else RolloutPlan()
        name = plan.endpoint or version.model
        self.session.emit(
            "on_deploy_requested", subject=version.ref, version=version, endpoint=name
        )
        with self._exclusive(name):
            repaired = self._repair_dead_rollout(name)
            repaired += self._restart_champion(version, name, plan)
            result = self._deploy(version, name, plan, reason)
        return dataclasses.replace(result, repaired=repaired) if repaired else result

    def _restart_champion(
        self, version: ModelVersion, name: str, plan: RolloutPlan
    ) -> tuple[str, ...]:
        """A stopped endpoint (undeployed, or stopped by an interrupt) whose model still has
        a `serving` version: that version serves on it again before a canary, shadow or A/B
        rolls out beside it, so the challenger is compared with the champion and the
        champion is there to fall back to. Only a model with nothing `serving` starts with
        its challenger alone (a first canary); `direct` replaces whatever serves anyway."""
        if plan.strategy == "direct" or self.find(name) is not None:
            return ()
        serving = self.session.registry.find_by_state(version.model, S.SERVING)
        if not serving or serving[0].ref == version.ref:
            return ()
        champion = serving[0]
        # the challenger's refusals (its state's gate, decided without acting), before
        # anything starts: a deploy refused leaves the endpoint stopped, as it found it
        refuse_if_live_elsewhere(
            self.server.endpoints(), version, besides=name, others=self.traffic.other_targets()
        )
        state, _ = stages_of(plan, champion.ref, version.ref)
        if version.state is not state:
            self.governance.require(version, state, reason=f"rollout: {state.value}")
        why = f"the serving version, started again for the {plan.strategy} of {version.ref}"
        started = self.server.deploy(champion, endpoint=name)  # raises having changed nothing
        self.traffic.deployed(name, started, champion.ref, why, f"{champion.ref} takes all traffic")
        return (
            f"endpoint {name!r} was stopped: started {champion.ref} (the serving version) on it "
            f"again, so {version.ref} rolls out beside it",
        )

    @contextlib.contextmanager
    def _exclusive(self, name: str) -> Iterator[None]:
        """`name` held for the block: a spine lock (`rollouts on endpoint:<target/name>`,
        released by the database or the kernel when its holder dies, kill -9 included) and
        the router's own hold where it has one (RolloutHold: the cluster's Lease). Two
        deploys at once would each route the endpoint as if the other were not there."""
        subject = endpoint_subject(name, self.traffic.target)
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(
                    self.session.spine.locks.hold(f"rollouts on {subject}", wait_s=0)
                )
            except LockTimeout:
                raise RolloutInProgress(self._busy(name, subject)) from None
            server = self.server
            if isinstance(server, RolloutHold):
                held.enter_context(server.hold(name))
            yield

    def _busy(self, name: str, subject: str) -> str:
        rollouts = [
            e
            for e in self.session.spine.audit_entries(subject=subject)
            if e.action.startswith("rollout.")
        ]
        target = "" if self.traffic.local else f" --target {self.traffic.target}"
        last = rollouts[-1] if rollouts else None
        if last is None or last.action != "rollout.started":
            return (
                f"endpoint {name!r}: another deploy is changing it now; nothing was changed "
                "(try again once it ends)"
            )
        owner = last.payload.get("owner") or {}
        model = ModelSelector.parse(str(last.payload.get("challenger"))).model
        return (
            f"endpoint {name!r} is rolling out {last.payload.get('challenger')} (started "
            f"{last.at:%Y-%m-%d %H:%M:%S} UTC by pid {owner.get('pid')} on {owner.get('host')}): "
            f"nothing was changed; let it end, or end it with `mlstack rollback {model}"
            f"{'' if name == model else ' --endpoint ' + name}{target}`"
        )

    def _repair_dead_rollout(self, name: str) -> tuple[str, ...]:
        """What a rollout whose process died left on `name` (its challenger's traffic, the
        rollout left open, the challenger in canary or shadow), put back as `mlstack doctor
        --repair` does. Holding the endpoint, no deploy of another process is behind it; a
        rollout of this very thread (a nested deploy) is alive and left alone."""
        from stack.orchestration.reconcile import Doctor
        from stack.rollout.recovery import RolloutRecovery

        doctor = Doctor(self.session, take_over_stale=True, router=self.traffic.router)
        recovery = RolloutRecovery(self.session, doctor.owner_liveness, self.traffic.router)
        done: list[str] = []
        why = "put back by the next deploy"
        for stranded in recovery.stranded_endpoints():
            if stranded.endpoint.name != name:
                continue
            done.append(f"{stranded.describe()}: {recovery.restore_endpoint(stranded, why)}")
            undone = {*stranded.stranded, stranded.challenger}
            for version in recovery.stranded_versions():
                if version.ref in undone:
                    done.append(recovery.restore_version(version, why))
        return tuple(done)

    def _deploy(
        self, version: ModelVersion, name: str, plan: RolloutPlan, reason: str
    ) -> RolloutResult:
        others = self.traffic.other_targets()
        refuse_if_live_elsewhere(self.server.endpoints(), version, besides=name, others=others)
        current = self.find(name)
        if current is None and version.state is S.SERVING:
            return self._direct(version, name, current, reason or "deploy")  # back up alone
        if current is None and plan.strategy == "canary":
            return self._first_canary(version, name, plan, reason or "first deploy")
        if current is None or plan.strategy == "direct":
            return self._direct(version, name, current, reason or "deploy")
        champion = champion_of(current)
        if champion == version.ref:
            return RolloutResult(current, "unchanged", version.ref)
        # The state's gate decided, then loaded (and its inputs checked), before the rollout
        # starts: a version that may not enter the state (a retired one), or that the
        # endpoint cannot take, fails here and leaves no rollout half begun.
        state, _ = stages_of(plan, champion, version.ref)
        if version.state is not state:
            self.governance.require(version, state, reason=f"rollout: {state.value}")
        self.server.add_version(version, endpoint=name)
        self.traffic.audit(
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
            version = self.traffic.move_or_undo(
                lambda: self.governance.promote(version, S.SERVING, reason=reason),
                name,
                started,
                current,
            )
        endpoint = self.traffic.deployed(
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
            version = self.traffic.move_or_undo(
                lambda: self.governance.promote(version, S.CANARY, reason="rollout: canary"),
                name,
                started,
                None,
            )
        self.traffic.audit(
            "rollout.started",
            name,
            reason,
            strategy="canary",
            champion=None,
            challenger=version.ref,
            plan=plan.model_dump(mode="json"),
            owner=current_owner(),  # judged by `mlstack doctor` if this process dies
        )
        endpoint = self.traffic.deployed(
            name, started, version.ref, reason, f"canary: {version.ref} serves alone"
        )
        stage = f"canary: {version.ref} serves alone"
        try:
            baked = self.baker.bake(name, version, plan, shadow=False, stage=stage)
        except KeyboardInterrupt as stop:
            self._unjudged_first_canary(name, version, [_stopped(stop)], None, endpoint)
            raise
        reasons, report = baked.reasons, baked.report
        if baked.outcome == "died":
            self.endings.died(name, None, version, reasons, report)
        if baked.outcome == "undecided":
            return self._unjudged_first_canary(name, version, reasons, report, endpoint)
        if not reasons:
            try:
                promoted = self.governance.promote(
                    version, S.SERVING, reason="canary held its SLOs"
                )
            except GateFailed as exc:
                reasons = [_refused(exc)]
        if reasons:
            why = "; ".join(reasons)
            self.endings.audit("rollout.rolled_back", name, why, version, None, reasons, report)
            self._stop(name, f"rolled back: {why}")
            return dataclasses.replace(
                self.endings.rejected(name, endpoint, version, None, reasons), stopped=True
            )
        self.traffic.audit("rollout.completed", name, "canary held its SLOs", version=promoted.ref)
        self.session.emit("on_deployed", subject=promoted.ref, version=promoted, endpoint=endpoint)
        return RolloutResult(endpoint, "promoted", promoted.ref)

    def _unjudged_first_canary(
        self,
        name: str,
        version: ModelVersion,
        reasons: list[str],
        report: HealthReport | None,
        endpoint: Endpoint,
    ) -> RolloutResult:
        """Nothing to fall back to: a first canary left unjudged (no evidence, or its process
        told to stop) stops, and its rollout ends undecided."""
        self._stop(name, "undecided: " + "; ".join(reasons))
        ended = self.endings.undecided(name, None, version, reasons, report, endpoint)
        return dataclasses.replace(ended, stopped=True)

    def _stop(self, name: str, why: str) -> None:
        """Stop endpoint `name` (a first canary's: nothing to fall back to), then audit it:
        its traffic history shows that nothing answered from then on."""
        self.server.undeploy(name)
        self.traffic.audit("endpoint.undeployed", name, why)

    def _roll_out(
        self, version: ModelVersion, name: str, champion: str, plan: RolloutPlan
    ) -> RolloutResult:
        """One mechanism for every strategy: enter the state, load the version, then for each
        stage route, bake and judge; the first breach rolls back."""
        state, stages = stages_of(plan, champion, version.ref)
        self._enter(version, state)
        try:
            return self._stages(version, name, champion, plan, stages)
        except KeyboardInterrupt as stop:  # Ctrl-C, SIGTERM: back to the champion, undecided
            self.endings.undecided(name, champion, version, [_stopped(stop)], None)
            raise

    def _stages(
        self,
        version: ModelVersion,
        name: str,
        champion: str,
        plan: RolloutPlan,
        stages: list[Stage],
    ) -> RolloutResult:
        report: HealthReport | None = None
        endpoint: Endpoint | None = None
        for stage in stages:
            try:
                endpoint = self.traffic.route(name, stage.split, stage.reason)
            except StackError as exc:  # refused by the server: nothing changed
                why = f"{version.ref} could not take its traffic: {first_line(exc)}"
                return self.endings.roll_back(name, champion, version, [why], report)
            baked = self.baker.bake(
                name, version, plan, shadow=stage.shadow, stage=stage.reason, champion=champion
            )
            reasons, report = baked.reasons, baked.report
            if baked.outcome == "died":
                self.endings.died(name, champion, version, reasons, report)
            if baked.outcome == "undecided":
                return self.endings.undecided(name, champion, version, reasons, report)
            if reasons and self.baker.rejected(version):  # rolled back while it baked
                return RolloutResult(
                    self.find(name) or endpoint, "rolled_back", version.ref, tuple(reasons)
                )
            if reasons:
                return self.endings.roll_back(name, champion, version, reasons, report)
        assert endpoint is not None
        if plan.strategy == "ab":
            self.traffic.audit(
                "rollout.ab_running", name, "", challenger=version.ref, health=health_json(report)
            )
            return RolloutResult(endpoint, "ab_running", version.ref)
        return self._promote(name, champion, version, report, f"{plan.strategy} held its SLOs")

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
            return self.endings.roll_back(name, champion, rolled, [why], None)
        changes = serving_history(self.session.spine, model)
        history = [c.version for c in changes if c.version]
        now = history[-1] if history else None
        undone = self._rolled_back_from(model, changes)
        previous = next((ref for ref in reversed(history) if ref not in {now, *undone}), None)
        if previous is None:
            raise StackError(f"{model} has no earlier serving version to roll back to")
        target = self.governance.version(previous)
        if not can_transition(target.state, S.SERVING):  # before the server changes
            raise InvalidTransition(
                f"{target.ref} is {target.state.value}; it cannot move back to serving"
            )
        before = self.find(name)
        started = self.server.deploy(target, endpoint=name)  # raises having changed nothing
        self.traffic.move_or_undo(
            lambda: Lifecycle(self.session).transition(
                model, target.version, S.SERVING, reason=why
            ),
            name,
            started,
            before,
        )
        deployed = self.traffic.deployed(name, started, previous, why, why)
        self.traffic.audit("rollout.rolled_back", name, why, **{"from": now, "to": previous})
        self.session.emit(
            "on_rollback",
            subject=name,
            endpoint=name,
            from_version=now or "",
            to_version=previous,
            reason=why,
        )
        return RolloutResult(deployed, "rolled_back", previous, (why,))

    def _rolled_back_from(self, model: str, changes: list[ServingChange]) -> set[str]:
        """The versions of `model` a rollback took serving from since they last began to
        serve: a second rollback goes further back, never forward to the version the first
        one undid (a version rolled out again since is a candidate again)."""
        began: dict[str, datetime] = {}
        for change in changes:
            if change.version:
                began[change.version] = change.at
        undone = set()
        for entry in self.session.spine.audit_entries(
            subject_prefix="endpoint:", action="rollout.rolled_back"
        ):
            named = entry.payload.get("from")  # one version, or a list (doctor's repairs)
            for ref in [named] if isinstance(named, str) else list(named or ()):
                if ref in began and entry.at >= began[ref]:
                    undone.add(ref)
        return undone

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
            return self.endings.roll_back(name, champion, version, [_refused(exc)], report)
        # the old champion stays loaded (in a process of its own now) to answer as fallback
        split = TrafficSplit({version.ref: 1.0, champion: 0.0}, champion=version.ref)
        try:
            endpoint = self.traffic.route(name, split, f"{version.ref} promoted: {why}")
        except StackError as exc:  # refused by the server: nothing changed
            why_not = f"{version.ref} could not take all traffic: {first_line(exc)}"
            return self.endings.roll_back(name, champion, version, [why_not], report)
        try:
            promoted = self.governance.promote(version, S.SERVING, reason=why)
        except GateFailed as exc:  # decided again, differently (a race)
            return self.endings.roll_back(name, champion, version, [_refused(exc)], report)
        except StackError as exc:  # a veto, a move made meanwhile: back to the champion
            return self.endings.roll_back(name, champion, version, [f"serving: {exc}"], report)
        self.traffic.audit(
            "rollout.completed", name, why, version=promoted.ref, health=health_json(report)
        )
        self.session.emit("on_deployed", subject=promoted.ref, version=promoted, endpoint=endpoint)
        return RolloutResult(endpoint, "promoted", promoted.ref)

    def _enter(self, version: ModelVersion, state: LifecycleState) -> None:
        if version.state is not state:
            self.governance.promote(version, state, reason=f"rollout: {state.value}")

    def find(self, name: str) -> Endpoint | None:
        """Endpoint `name` as the server has it now (None when it is not deployed)."""
        return self.traffic.find(name)


def _refused(exc: GateFailed) -> str:
    """A rollout's reason for a refusing `serving` gate: its rules with their numbers, not
    the version's state when it was refused (the rollout then moves it on: rejected)."""
    return f"serving gate: {cast(GateDecision, exc.decision).explain()}"


def _stopped(stop: KeyboardInterrupt) -> str:
    """Why a rollout stopped undecided when its process was told to stop."""
    return "terminated (SIGTERM)" if isinstance(stop, Terminated) else "interrupted (Ctrl-C)"
