"""Verdicts rest on evidence: the judge on health reports, and the controller holding, ending
undecided, or stopping on a dead endpoint (on the reference server, with scripted health)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import ClassVar

import pytest

from stack.config.rollout import RolloutPlan, ServiceLevels
from stack.contract.roles import Role
from stack.contract.serving import Endpoint, HealthReport, TrafficSplit, VersionHealth
from stack.contract.states import LifecycleState as S
from stack.errors import EndpointDown, InvalidTransition, NotFound, StackError
from stack.interrupts import Terminated
from stack.lifecycle import Lifecycle
from stack.plugins import AdapterManifest, RoleBinding
from stack.rollout import BakeTick, RolloutController
from stack.rollout.judge import judge
from stack.session import StackSession
from tests.rollout.test_bake_progress import champion_and_challenger
from tests.support.memory import MemoryServer
from tests.support.sessions import memory_session

FAST = ServiceLevels(min_requests=10)


def report(**versions: VersionHealth) -> HealthReport:
    """A report of versions named churn_1, churn_2 (as churn@1, churn@2)."""
    named = {ref.replace("_", "@"): health for ref, health in versions.items()}
    requests = sum(v.requests for v in named.values())
    return HealthReport("churn", True, requests, 0.0, None, named)


# -- the judge ---------------------------------------------------------------------------


def test_a_challenger_slower_than_twice_the_champion_breaches_by_default() -> None:
    slow = report(churn_1=VersionHealth(200, 0, 10.0), churn_2=VersionHealth(200, 0, 400.0))
    verdict = judge(ServiceLevels(), slow, "churn@2", champion_p99_ms=10.0, final=False)
    assert verdict.breaches == ("p99 latency 400.0 ms over 2x the champion's 10.0 ms",)


def test_a_few_ms_over_twice_the_champion_is_no_breach() -> None:
    """A challenger in its own process pays a few ms per call: below the floor, no breach."""
    close = report(churn_2=VersionHealth(200, 0, 9.0))
    assert judge(ServiceLevels(), close, "churn@2", champion_p99_ms=2.0, final=True).passed


def test_the_p99_of_a_handful_of_requests_is_not_judged_against_the_champion() -> None:
    """Under 100 requests the p99 is the slowest call: on a loaded machine a healthy canary
    was rolled back for the slowest of 36."""
    for few in (3, 36, 99):
        outlier = report(churn_2=VersionHealth(few, 0, 900.0))
        assert judge(FAST, outlier, "churn@2", champion_p99_ms=10.0, final=False).passed
    enough = report(churn_2=VersionHealth(100, 0, 900.0))
    assert not judge(FAST, enough, "churn@2", champion_p99_ms=10.0, final=False).passed


def test_the_latency_rule_is_overridable_in_the_recipe() -> None:
    slow = report(churn_2=VersionHealth(200, 0, 400.0))
    off = ServiceLevels(max_p99_ratio=None)
    assert judge(off, slow, "churn@2", champion_p99_ms=10.0, final=True).passed
    loose = ServiceLevels(max_p99_ratio=50)
    assert judge(loose, slow, "churn@2", champion_p99_ms=10.0, final=True).passed


def test_too_few_requests_hold_at_the_end_of_a_window_and_never_breach() -> None:
    quiet = report(churn_2=VersionHealth(3, 0, 5.0, fallbacks=4))
    assert judge(FAST, quiet, "churn@2", final=False).passed  # not over yet
    verdict = judge(FAST, quiet, "churn@2", final=True)
    assert verdict.breaches == ()
    assert verdict.holds == (
        "only 3 requests reached churn@2 (and 4 it answered for another version): at least "
        "10 are needed to judge it",
    )


def test_inputs_every_version_failed_are_not_the_versions_errors() -> None:
    faulty_inputs = report(churn_2=VersionHealth(40, 0, 5.0, input_faults=12))
    assert judge(FAST, faulty_inputs, "churn@2", final=True).passed
    errors = report(churn_2=VersionHealth(40, 4, 5.0, input_faults=12))
    breach = judge(FAST, errors, "churn@2", final=True)
    assert breach.breaches[0].startswith("error rate 10.0% over 1.0% (4 of 40 requests; 12 more")


def test_an_error_rate_breach_names_what_failed() -> None:
    kinds = {"ValueError": 1, "DeadlineMissed": 3}
    errors = report(churn_2=VersionHealth(40, 4, 5.0, error_kinds=kinds))
    [breach] = judge(FAST, errors, "churn@2", final=True).breaches
    assert breach == (
        "error rate 10.0% over 1.0% (4 of 40 requests: 3 DeadlineMissed, 1 ValueError)"
    )


# -- the controller ----------------------------------------------------------------------


class ScriptedServer(MemoryServer):
    """The reference server whose health follows `script`, one entry per check (the last
    repeats): a report, an exception to raise, or "die" (the endpoint stops running)."""

    script: ClassVar[list[HealthReport | Exception | str]] = []
    dead: ClassVar[bool] = False
    routed: ClassVar[list[TrafficSplit]] = []

    def health(self, endpoint: str, *, since: datetime | None = None) -> HealthReport:
        entry = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if entry == "die":
            type(self).dead = True
        if self.dead:
            raise NotFound(f"no endpoint {endpoint!r}")
        if isinstance(entry, Exception):
            raise entry
        assert isinstance(entry, HealthReport)
        return entry

    def route(self, endpoint: str, split: TrafficSplit) -> Endpoint:
        if self.dead:
            raise NotFound(f"endpoint {endpoint!r} is not running")
        type(self).routed.append(split)
        return super().route(endpoint, split)

    def endpoints(self) -> list[Endpoint]:
        return [] if self.dead else super().endpoints()


MANIFEST = AdapterManifest(
    name="memory",
    package="mlstack-memory",
    roles={
        Role.REGISTRY: RoleBinding("tests.support.memory:MemoryRegistry"),
        Role.SERVER: RoleBinding("tests.rollout.test_verdicts:ScriptedServer"),
    },
)
HEALTHY = report(churn_1=VersionHealth(50, 0, 10.0), churn_2=VersionHealth(50, 0, 11.0))
QUIET = report(churn_1=VersionHealth(50, 0, 10.0), churn_2=VersionHealth(2, 0, 11.0))
PLAN = RolloutPlan(
    steps=(0.25, 1.0), bake_seconds=0, check_seconds=0.01, max_hold_seconds=0.2, slo=FAST
)


@pytest.fixture
def session(tmp_path: Path) -> Iterator[StackSession]:
    ScriptedServer.script, ScriptedServer.dead, ScriptedServer.routed = [HEALTHY], False, []
    with memory_session(tmp_path, MANIFEST, "registry: memory\nserver: memory\n") as opened:
        champion_and_challenger(opened)  # churn@1 serving, churn@2 approved
        yield opened


def state(session: StackSession, version: int) -> S:
    return session.registry.get_version("churn", version).state


def actions(session: StackSession) -> list[str]:
    entries = session.spine.audit_entries(subject="endpoint:churn")
    return [e.action for e in entries if e.action.startswith("rollout.")]


def test_a_canary_without_evidence_holds_then_stops_undecided(session: StackSession) -> None:
    ScriptedServer.script = [QUIET]
    ticks: list[BakeTick] = []
    result = RolloutController(session, progress=ticks.append).deploy("churn@2", PLAN)
    assert result.outcome == "undecided"
    assert result.reasons == (
        "only 2 requests reached churn@2: at least 10 are needed to judge it",
    )
    assert len(ticks) > 1 and all(t.holds and not t.reasons for t in ticks), "it held"
    assert dict(result.endpoint.split.weights) == {"churn@1": 1.0}
    assert (state(session, 1), state(session, 2)) == (S.SERVING, S.APPROVED)
    assert actions(session) == ["rollout.started", "rollout.undecided"]


def test_evidence_that_arrives_while_it_holds_decides(session: StackSession) -> None:
    ScriptedServer.script = [QUIET, QUIET, HEALTHY]
    plan = PLAN.model_copy(update={"max_hold_seconds": 60.0})
    result = RolloutController(session).deploy("churn@2", plan)
    assert result.outcome == "promoted", result.reasons
    assert state(session, 2) is S.SERVING


def test_unreadable_health_holds_and_never_rolls_back(session: StackSession) -> None:
    ScriptedServer.script = [RuntimeError("prediction log unavailable")]
    result = RolloutController(session).deploy("churn@2", PLAN)
    assert result.outcome == "undecided"
    assert result.reasons == (
        "its health could not be read (RuntimeError: prediction log unavailable)",
    )
    assert state(session, 2) is S.APPROVED
    assert "rollout.rolled_back" not in actions(session)


def test_an_endpoint_that_runs_but_is_not_ready_cannot_pass(session: StackSession) -> None:
    """Failures outside the app (its readiness check fails) leave the figures unproven."""
    ScriptedServer.script = [replace(HEALTHY, ready=False)]
    result = RolloutController(session).deploy("churn@2", PLAN)
    assert result.outcome == "undecided"
    assert result.reasons == ("endpoint 'churn' runs but does not answer as ready",)
    assert state(session, 2) is S.APPROVED


def test_figures_the_endpoint_says_are_short_cannot_pass(session: StackSession) -> None:
    """With the prediction log refusing rows, a healthy-looking window proves nothing."""
    ScriptedServer.script = [replace(HEALTHY, degraded=("prediction log refusing rows",))]
    result = RolloutController(session).deploy("churn@2", PLAN)
    assert result.outcome == "undecided"
    assert result.reasons == ("its figures may be short: prediction log refusing rows",)
    assert "rollout.rolled_back" not in actions(session)


def test_an_endpoint_that_dies_mid_bake_ends_the_rollout_truthfully(
    session: StackSession,
) -> None:
    ScriptedServer.script = [HEALTHY, "die"]
    with pytest.raises(EndpointDown) as raised:
        RolloutController(session).deploy("churn@2", PLAN)
    message = str(raised.value)
    assert "endpoint 'churn' is not running" in message
    assert "mlstack undeploy churn" in message and "mlstack deploy churn@1" in message
    assert (state(session, 1), state(session, 2)) == (S.SERVING, S.APPROVED)
    assert actions(session) == ["rollout.started", "rollout.undecided"]
    assert session.spine.verify_audit().ok


def test_a_slow_challenger_is_judged_against_the_champions_last_latency(
    session: StackSession,
) -> None:
    """At 100% the champion answers nothing: its p99 from the step before is the yardstick."""
    busy = report(churn_1=VersionHealth(150, 0, 10.0), churn_2=VersionHealth(50, 0, 11.0))
    slow_alone = report(churn_1=VersionHealth(0, 0, None), churn_2=VersionHealth(200, 0, 400.0))
    ScriptedServer.script = [busy, slow_alone]
    result = RolloutController(session).deploy("churn@2", PLAN)
    assert result.outcome == "rolled_back"
    assert result.reasons == ("p99 latency 400.0 ms over 2x the champion's 10.0 ms",)
    assert state(session, 2) is S.REJECTED


def test_the_champions_p99_of_a_handful_is_no_yardstick(session: StackSession) -> None:
    """The champion's p99 counts only from as many requests as the challenger's (100): a
    canary was rolled back against a champion's 99 requests on a loaded machine."""
    few = report(churn_1=VersionHealth(99, 0, 10.0), churn_2=VersionHealth(103, 0, 196.6))
    ScriptedServer.script = [few]
    result = RolloutController(session).deploy("churn@2", PLAN)
    assert result.outcome == "promoted", result.reasons


def test_the_champion_stays_named_until_the_promotion(session: StackSession) -> None:
    plan = PLAN.model_copy(update={"challenger_deadline_ms": 250.0})
    assert RolloutController(session).deploy("churn@2", plan).outcome == "promoted"
    stages, promotion = ScriptedServer.routed[:-1], ScriptedServer.routed[-1]
    assert [dict(s.weights) for s in stages] == [
        {"churn@1": 0.75, "churn@2": 0.25},
        {"churn@1": 0.0, "churn@2": 1.0},
    ]
    assert {(s.champion, s.deadline_ms) for s in stages} == {("churn@1", 250.0)}
    assert promotion.champion == "churn@2"


def test_a_version_that_may_not_enter_the_rollout_leaves_no_rollout_begun(
    session: StackSession,
) -> None:
    """A retired version refused at the door: no version loaded beside the champion, no
    `rollout.started` for `rollout status` or `doctor` to take for a rollout that died."""
    Lifecycle(session).transition("churn", 2, S.RETIRED, actor="ci")
    with pytest.raises(InvalidTransition, match="churn@2 is retired; it cannot move to canary"):
        RolloutController(session).deploy("churn@2", PLAN)
    assert actions(session) == []
    assert "churn@2" not in session.server.versions  # type: ignore[attr-defined]
    assert dict(session.server.endpoints()[0].split.weights) == {"churn@1": 1.0}
    assert (state(session, 1), state(session, 2)) == (S.SERVING, S.RETIRED)


def test_a_version_cannot_serve_on_a_second_endpoint_while_another_version_serves(
    session: StackSession,
) -> None:
    """A model has one `serving` version: deploying churn@2 on a new endpoint would move it
    to serving and retire churn@1, which endpoint `churn` still answers with. Refused before
    anything changes; the version that serves may also answer on a second endpoint."""
    direct = RolloutPlan(strategy="direct", endpoint="churn-eu")
    with pytest.raises(StackError, match=r"churn@2 cannot move on endpoint 'churn-eu': churn "):
        RolloutController(session).deploy("churn@2", direct)
    assert (state(session, 1), state(session, 2)) == (S.SERVING, S.APPROVED)
    assert [e.name for e in session.server.endpoints()] == ["churn"]
    assert session.spine.audit_entries(subject="endpoint:churn-eu") == []
    assert RolloutController(session).deploy("churn@1", direct).outcome == "deployed"
    assert sorted(e.name for e in session.server.endpoints()) == ["churn", "churn-eu"]
    # and now churn@2 cannot take `churn` either while churn-eu answers with churn@1
    with pytest.raises(StackError, match=r"churn-eu \(churn@1\) serves another version"):
        RolloutController(session).deploy("churn@2", PLAN)
    assert state(session, 1) is S.SERVING


@pytest.mark.parametrize(
    ("stop", "said"),
    [
        (KeyboardInterrupt(), "interrupted (Ctrl-C)"),
        (Terminated("SIGTERM"), "terminated (SIGTERM)"),
    ],
)
def test_a_rollout_told_to_stop_puts_the_champion_back_and_ends_undecided(
    session: StackSession, stop: KeyboardInterrupt, said: str
) -> None:
    """Ctrl-C or SIGTERM (a CI job cancelled) mid-bake: all traffic back to the champion,
    the challenger back to approved, the rollout ended in the log; not a challenger left
    taking its share for `doctor` to find."""

    def interrupt(tick: BakeTick) -> None:
        if tick.stage.endswith("100% to churn@2"):
            raise stop

    with pytest.raises(KeyboardInterrupt):
        RolloutController(session, progress=interrupt).deploy("churn@2", PLAN)
    assert dict(session.server.endpoints()[0].split.weights) == {"churn@1": 1.0}
    assert (state(session, 1), state(session, 2)) == (S.SERVING, S.APPROVED)
    assert actions(session) == ["rollout.started", "rollout.undecided"]
    [ended] = session.spine.audit_entries(subject="endpoint:churn", action="rollout.undecided")
    assert said in ended.reason
