"""A bake: watching a version's health on its endpoint (and the controller's own probes of
it) for the plan's bake time, judging it against the SLOs, holding while evidence is
missing, and ending it at once when the endpoint dies."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from stack.config.rollout import RolloutPlan
from stack.contract.registry import ModelVersion
from stack.contract.serving import HealthReport, Router
from stack.contract.states import LifecycleState
from stack.governance.service import Governance
from stack.rollout.judge import LATENCY_SAMPLE, judge
from stack.rollout.probes import probing
from stack.rollout.results import Baked, BakeTick
from stack.rollout.traffic import EndpointTraffic

S = LifecycleState


class Baker:
    """Bakes for one controller; remembers each champion's last p99 measured (at a canary's
    100% step the champion answers nothing)."""

    def __init__(
        self,
        traffic: EndpointTraffic,
        governance: Governance,
        *,
        sleep: Callable[[float], None],
        progress: Callable[[BakeTick], None] | None,
    ) -> None:
        self.traffic = traffic
        self.governance = governance
        self.sleep = sleep
        self.progress = progress
        self._champion_p99: dict[str, float] = {}  # the serving version's, last measured

    @property
    def server(self) -> Router:
        return self.traffic.server

    def bake(
        self,
        name: str,
        version: ModelVersion,
        plan: RolloutPlan,
        *,
        shadow: bool,
        stage: str,
        champion: str | None = None,
    ) -> Baked:
        """Watch `version` for the bake time, with the controller's own probes of the
        versions it judges (probes.py; a shadow's copies are off the request path: not
        probed); the first breach ends the wait. Past the bake, a verdict that lacks evidence
        (too few requests, health unreadable or degraded, an endpoint that runs but does not
        answer its readiness check) holds, checked again every check_seconds, for up to
        plan.max_hold_seconds: then `undecided`. An endpoint that stopped running ends the
        bake at once (`died`)."""
        judged = [] if shadow else [version.ref, *([champion] if champion else [])]
        judged = judged if self.traffic.local else []  # probes go through the local server
        with probing(self.traffic.session, name, judged, plan) as probes:
            ref = version.ref
            started = datetime.now(UTC)
            began = time.monotonic()
            deadline = began + plan.bake_seconds
            give_up = deadline + plan.max_hold_seconds
            report = HealthReport(
                name, ready=False, requests=0, error_rate=0.0, p99_latency_ms=None
            )
            while True:
                now = time.monotonic()
                final = now >= deadline
                reasons: list[str] = []
                holds: list[str] = []
                try:
                    report = self.server.health(name, since=started)
                except Exception as exc:  # no evidence this time: not a verdict either way
                    holds.append(f"its health could not be read ({type(exc).__name__}: {exc})")
                dead = self.traffic.dead(name) if holds or not report.ready else None
                if dead is not None:
                    return Baked("died", [dead], report)
                if holds:
                    pass
                elif self.rejected(version):
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
                    return Baked("breached", reasons, report)
                if final and not holds:
                    return Baked("held", [], report)
                if final and now >= give_up:
                    return Baked("undecided", holds, report)
                self.sleep(min(plan.check_seconds, (give_up if final else deadline) - now))

    def _champion_latency(
        self, plan: RolloutPlan, report: HealthReport, champion: str | None
    ) -> float | None:
        """The champion's p99 in this window when it had enough traffic to tell (as many
        requests as the challenger needs to be judged on latency), else the last one
        measured (at a canary's 100% step the champion answers nothing)."""
        if champion is None:
            return None
        health = report.versions.get(champion)
        if (
            health is not None
            and health.p99_latency_ms is not None
            and health.requests >= max(plan.slo.min_requests, LATENCY_SAMPLE)
        ):
            self._champion_p99[champion] = health.p99_latency_ms
        return self._champion_p99.get(champion)

    def rejected(self, version: ModelVersion) -> bool:
        """Rolled back by someone else during the bake (a monitoring policy, a person)."""
        return self.governance.version(version).state is S.REJECTED
