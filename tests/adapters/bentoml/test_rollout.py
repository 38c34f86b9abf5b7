"""Canary, shadow, A/B and rollback against real endpoints, judged on the prediction log."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from stack.config.rollout import RolloutPlan, ServiceLevels
from stack.contract.states import LifecycleState as S
from stack.errors import StackError
from stack.governance.history import served_at
from stack.governance.service import Governance
from stack.hooks import hookimpl
from stack.hooks.bus import HookBus
from stack.rollout import RolloutController
from stack.rollout.history import split_at
from stack.session import StackSession
from stack_bentoml.predictlog import read_log
from tests.adapters.bentoml.conftest import STACK, Stack, Traffic, free_port, row
from tests.adapters.bentoml.models import Registered, home


class Rollbacks:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    @hookimpl
    def on_rollback(self, endpoint: str, from_version: str, to_version: str, reason: str) -> None:
        self.seen.append((endpoint, from_version, to_version))


@pytest.fixture
def stack(
    tmp_path_factory: pytest.TempPathFactory, registered_template: Registered
) -> Iterator[Stack]:
    """A fresh registry per test (a copy of the session's): rollouts move lifecycle states."""
    folder = tmp_path_factory.mktemp("rollout")
    (folder / "stack.yaml").write_text(STACK.format(port=free_port()))
    versions = registered_template.copy_to(home(folder))
    with StackSession.open(folder / "stack.yaml", base_dir=folder) as session:
        Governance(session).promote(versions.champion.ref, S.APPROVED)
        RolloutController(session).deploy(
            versions.champion.ref, RolloutPlan(strategy="direct", endpoint="churn")
        )
    built = Stack(folder, versions)
    yield built
    with built.session() as session:
        for endpoint in session.server.endpoints():
            session.server.undeploy(endpoint.name)


def session_with(stack: Stack, hook: object) -> StackSession:
    bus = HookBus()
    bus.register(hook)
    return StackSession.open(stack.folder / "stack.yaml", base_dir=stack.folder, hooks=bus)


FAST = ServiceLevels(max_error_rate=0.05, min_requests=5)


def test_a_crashing_canary_is_rolled_back_and_no_request_is_dropped(stack: Stack) -> None:
    quirky = stack.versions.quirky
    hook = Rollbacks()
    with session_with(stack, hook) as session:
        Governance(session).promote(quirky.ref, S.APPROVED)
        url = session.server.endpoints()[0].url
        plan = RolloutPlan(steps=(0.5, 1.0), bake_seconds=6, check_seconds=0.5, slo=FAST)
        with Traffic(url, row(tenure=5000.0)) as traffic:  # quirky fails on these
            result = RolloutController(session).deploy(quirky.ref, plan)
        assert result.outcome == "rolled_back"
        assert "error rate" in result.reasons[0]
        assert dict(result.endpoint.split.weights) == {stack.versions.champion.ref: 1.0}
        assert session.registry.get_version("churn", quirky.version).state is S.REJECTED
        assert session.registry.find_by_state("churn", S.SERVING)[0].ref == (
            stack.versions.champion.ref
        )
        entries = session.spine.audit_entries(subject="endpoint:churn")
        rolled = [e for e in entries if e.action == "rollout.rolled_back"]
        assert rolled and "error rate" in rolled[0].reason
        assert session.spine.verify_audit().ok
    statuses = {status for status, _ in traffic.answers}
    assert statuses == {200}, "the champion answered every request the canary failed"
    logged = read_log(stack.folder / ".mlstack" / "predictions" / "churn").to_pylist()
    failed = [r for r in logged if r["model_version"] == quirky.ref and r["status"] == 500]
    assert failed, "each failure of the canary is logged against it"
    in_its_process = failed[0]["error"].split(f"in {quirky.ref}'s process:")[1]  # its traceback
    assert "in predict" in in_its_process and "RuntimeError: challenger crashed" in in_its_process
    assert {version for _, version in traffic.answers} == {stack.versions.champion.ref}
    assert hook.seen == [("churn", quirky.ref, stack.versions.champion.ref)]


def test_a_healthy_canary_is_promoted_and_can_be_rolled_back_by_hand(stack: Stack) -> None:
    champion, challenger = stack.versions.champion, stack.versions.challenger
    before = datetime.now(UTC)
    with stack.session() as session:
        Governance(session).promote(challenger.ref, S.APPROVED)
        url = session.server.endpoints()[0].url
        plan = RolloutPlan(steps=(0.5, 1.0), bake_seconds=3, check_seconds=0.5, slo=FAST)
        with Traffic(url, row()) as traffic:
            result = RolloutController(session).deploy(challenger.ref, plan)
        assert result.outcome == "promoted", result.reasons
        assert session.registry.find_by_state("churn", S.SERVING)[0].ref == challenger.ref
        # promoted, it answers in the worker: its process of its own ends (not at once: the
        # requests the replaced split sent it are answered first); the old champion, kept at
        # weight 0 as fallback, answers from a process of its own instead
        isolated = stack.folder / ".mlstack" / "serving" / "churn" / "isolated"
        mine = f"churn-v{challenger.version}.*.pid"
        deadline = time.monotonic() + 120
        while list(isolated.glob(mine)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not list(isolated.glob(mine)), "the promoted challenger's process lives on"
        assert list(isolated.glob(f"churn-v{champion.version}.*.pid")), "no fallback process"
        assert session.registry.get_version("churn", champion.version).state is S.RETIRED
        after = datetime.now(UTC)
        assert served_at(session.spine, "churn", before) == champion.ref
        assert served_at(session.spine, "churn", after) == challenger.ref
        halfway = split_at(session.spine, "churn", after)
        assert halfway is not None and halfway.weights[challenger.ref] == 1.0

        back = RolloutController(session).rollback("churn", reason="business asked")
        assert back.version == champion.ref
        assert session.registry.find_by_state("churn", S.SERVING)[0].ref == champion.ref
    assert {status for status, _ in traffic.answers} == {200}
    assert {version for _, version in traffic.answers} == {champion.ref, challenger.ref}
    answer = httpx.post(f"{result.endpoint.url}/predict", json=row())
    assert answer.headers["x-model-version"] == champion.ref


def test_a_canary_on_a_stopped_endpoint_starts_the_serving_version_beside_it(
    stack: Stack,
) -> None:
    """`undeploy` leaves the version `serving`: the next canary brings it back on the
    endpoint and rolls out beside it (a champion to compare with and fall back to), rather
    than serving the challenger alone as a first deploy does."""
    champion, challenger = stack.versions.champion, stack.versions.challenger
    with stack.session() as session:
        session.server.undeploy("churn")
        Governance(session).promote(challenger.ref, S.APPROVED)
        plan = RolloutPlan(steps=(0.5, 1.0), bake_seconds=3600, check_seconds=0.5, slo=FAST)
        seen: list[dict[str, float]] = []

        def bake_once(seconds: float) -> None:  # the first step's split, then a breach
            [endpoint] = session.server.endpoints()
            seen.append(dict(endpoint.split.weights))
            raise KeyboardInterrupt

        controller = RolloutController(session, sleep=bake_once)
        with pytest.raises(KeyboardInterrupt):
            controller.deploy(challenger.ref, plan)

        assert seen[0] == {champion.ref: 0.5, challenger.ref: 0.5}
        [endpoint] = session.server.endpoints()  # Ctrl-C: back to the champion, still up
        assert dict(endpoint.split.weights) == {champion.ref: 1.0}
        assert session.registry.find_by_state("churn", S.SERVING)[0].ref == champion.ref
        assert session.registry.get_version("churn", challenger.version).state is S.APPROVED
        routed = [e for e in session.spine.audit_entries(action="endpoint.deployed")]
        assert "started again for the canary of " + challenger.ref in routed[-1].reason

        session.server.undeploy("churn")
        rejected = Governance(session).reject(challenger.ref, reason="not this one")
        with pytest.raises(StackError, match="rejected"):  # refused: nothing started
            RolloutController(session).deploy(rejected.ref, plan)
        assert session.server.endpoints() == []

        # the serving version itself: back up, alone
        again = RolloutController(session).deploy(champion.ref, plan)
        assert again.outcome == "deployed"
        assert dict(again.endpoint.split.weights) == {champion.ref: 1.0}


def test_a_shadow_that_disagrees_is_rolled_back_and_never_answers(stack: Stack) -> None:
    challenger = stack.versions.challenger
    with stack.session() as session:
        url = session.server.endpoints()[0].url
        slo = ServiceLevels(max_disagreement=0.2, min_requests=5)
        plan = RolloutPlan(strategy="shadow", bake_seconds=6, check_seconds=0.5, slo=slo)
        with Traffic(url, row(tenure=2.0)) as traffic:
            result = RolloutController(session).deploy(challenger.ref, plan)
        assert result.outcome == "rolled_back"
        assert "disagrees with live" in result.reasons[0]
        assert session.registry.get_version("churn", challenger.version).state is S.REJECTED
    assert {version for _, version in traffic.answers} == {stack.versions.champion.ref}


def test_ab_assignment_is_sticky_per_subject(stack: Stack) -> None:
    champion, challenger = stack.versions.champion, stack.versions.challenger
    with stack.session() as session:
        Governance(session).promote(challenger.ref, S.APPROVED)
        url = session.server.endpoints()[0].url
        plan = RolloutPlan(
            strategy="ab", bake_seconds=2, check_seconds=0.5, slo=ServiceLevels(min_requests=2)
        )
        with Traffic(url, row(), headers={"x-mlstack-subject": "customer-1"}):
            result = RolloutController(session).deploy(challenger.ref, plan)
        assert result.outcome == "ab_running", result.reasons
    arms: dict[str, set[str]] = {}
    with httpx.Client() as client:
        for subject in [f"customer-{i}" for i in range(40)] * 3:
            response = client.post(
                f"{url}/predict", json=row(), headers={"x-mlstack-subject": subject}
            )
            arms.setdefault(subject, set()).add(response.headers["x-model-version"])
    assert all(len(versions) == 1 for versions in arms.values()), "a subject switched arms"
    assert set().union(*arms.values()) == {champion.ref, challenger.ref}


def test_a_challenger_killed_while_it_takes_all_traffic_drops_no_request(stack: Stack) -> None:
    """At the 100% step the challenger still runs in a process of its own (the champion
    waits in the worker until the promotion completes): killing it loses nothing, and it is
    rolled back, not promoted."""
    import os
    import signal
    import threading

    challenger = stack.versions.challenger
    isolated = stack.folder / ".mlstack" / "serving" / "churn" / "isolated"

    def kill_the_challenger(traffic: Traffic) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            # loaded before its split is written: killed once it has answered requests
            answered = sum(1 for _, version in traffic.answers if version == challenger.ref)
            pids = list(isolated.glob(f"churn-v{challenger.version}.*.pid"))
            if pids and answered >= 3:
                os.kill(int(pids[0].read_text()), signal.SIGKILL)
                return
            time.sleep(0.1)

    with stack.session() as session:
        Governance(session).promote(challenger.ref, S.APPROVED)
        url = session.server.endpoints()[0].url
        plan = RolloutPlan(steps=(1.0,), bake_seconds=8, check_seconds=0.5, slo=FAST)
        with Traffic(url, row()) as traffic:
            killer = threading.Thread(target=kill_the_challenger, args=(traffic,))
            killer.start()
            result = RolloutController(session).deploy(challenger.ref, plan)
        killer.join()
        assert result.outcome == "rolled_back", result
        assert "error rate" in result.reasons[0]
        assert session.registry.get_version("churn", challenger.version).state is S.REJECTED
    statuses = [status for status, _ in traffic.answers]
    assert statuses and set(statuses) == {200}, "every request was answered"
    answered = {version for _, version in traffic.answers}
    assert answered == {stack.versions.champion.ref, challenger.ref}


def test_a_stalled_canary_misses_its_deadline_and_the_champion_answers(stack: Stack) -> None:
    """A canary taking 3 s per call, under two clients: each call to it misses its deadline,
    the champion answers instead, and the misses are the canary's errors."""
    champion, quirky = stack.versions.champion, stack.versions.quirky
    with stack.session() as session:
        Governance(session).promote(quirky.ref, S.APPROVED)
        url = session.server.endpoints()[0].url
        plan = RolloutPlan(
            steps=(0.5, 1.0),
            bake_seconds=6,
            check_seconds=0.5,
            challenger_deadline_ms=200,
            slo=FAST,
        )
        stalls = row(monthly_spend=2000.0)  # quirky sleeps 3 s on these
        with Traffic(url, stalls) as one, Traffic(url, stalls) as two:
            result = RolloutController(session).deploy(quirky.ref, plan)
        assert result.outcome == "rolled_back", result
        assert "error rate" in result.reasons[0]
        assert "DeadlineMissed" in result.reasons[0], result.reasons  # what failed, named
        assert session.registry.get_version("churn", quirky.version).state is S.REJECTED
    answers = one.answers + two.answers
    assert answers and {status for status, _ in answers} == {200}, "the champion answered all"
    assert {version for _, version in answers} == {champion.ref}

    def misses_and_stand_ins() -> tuple[list[dict[str, Any]], set[str]]:
        logged = read_log(stack.folder / ".mlstack" / "predictions" / "churn").to_pylist()
        missed = [r for r in logged if r["model_version"] == quirky.ref and r["status"] == 504]
        stood_in = {
            r["request_id"]
            for r in logged
            if r["model_version"] == champion.ref and r["role"] == "fallback"
        }
        return missed, stood_in

    # a miss and the champion's answer in its place may reach the log in two flushes: wait
    # (bounded) for the flush after the last request before judging the pairs
    deadline = time.monotonic() + 30
    missed, stood_in = misses_and_stand_ins()
    while not {r["request_id"] for r in missed} <= stood_in and time.monotonic() < deadline:
        time.sleep(0.2)
        missed, stood_in = misses_and_stand_ins()
    assert missed, "each miss is logged against the canary"
    assert "did not answer within its deadline of 200 ms" in missed[0]["error"]
    assert {r["request_id"] for r in missed} <= stood_in, "the champion answered each miss"


def test_a_stuck_challenger_never_blocks_the_worker(stack: Stack) -> None:
    """While a request waits on a challenger stuck for 3 s, the worker goes on answering:
    the champion's requests and /readyz are answered before the stuck one is."""
    import threading

    from stack.contract.serving import TrafficSplit

    champion, quirky = stack.versions.champion, stack.versions.quirky
    header = "x-mlstack-subject"
    with stack.session() as session:
        session.server.add_version(quirky, endpoint="churn")
        split = TrafficSplit(
            {champion.ref: 0.5, quirky.ref: 0.5},
            sticky=True,
            champion=champion.ref,
            deadline_ms=20_000,  # the stuck request is waited for, not failed over
        )
        url = session.server.route("churn", split).url
    arms: dict[str, str] = {}
    with httpx.Client() as client:
        for subject in (f"subject-{i}" for i in range(40)):
            answer = client.post(f"{url}/predict", json=row(), headers={header: subject})
            arms.setdefault(answer.headers["x-model-version"], subject)
    stuck: list[httpx.Response] = []

    def wait_on_the_challenger() -> None:
        stuck.append(
            httpx.post(
                f"{url}/predict",
                json=row(monthly_spend=2000.0),  # quirky sleeps 3 s on it
                headers={header: arms[quirky.ref]},
                timeout=30,
            )
        )

    waiting = threading.Thread(target=wait_on_the_challenger)
    waiting.start()
    time.sleep(1.0)  # it has reached the challenger (were it not, the check holds anyway)
    answered_meanwhile = []
    with httpx.Client() as client:
        for _ in range(5):
            answer = client.post(f"{url}/predict", json=row(), headers={header: arms[champion.ref]})
            ready = client.get(f"{url}/readyz")
            answered_meanwhile.append((answer.status_code, ready.status_code, waiting.is_alive()))
    waiting.join(30)
    assert answered_meanwhile == [(200, 200, True)] * 5, "the worker was blocked"
    assert stuck[0].status_code == 200
    assert stuck[0].headers["x-model-version"] == quirky.ref


def test_a_first_canary_without_traffic_stops_undecided(stack: Stack) -> None:
    """With nothing serving on the endpoint, a canary that gets no traffic in its bake (and
    its hold) cannot be judged: the endpoint is stopped (nothing to fall back to) and the
    version goes back to approved, neither promoted nor rejected on missing data. The
    passing path, under traffic, is the quickstart's deploy step (tests/recipes)."""
    plan = RolloutPlan(
        strategy="canary",
        endpoint="fresh",
        steps=(1.0,),
        bake_seconds=1,
        check_seconds=0.5,
        max_hold_seconds=1,
        slo=FAST,
    )
    rollbacks = Rollbacks()
    with session_with(stack, rollbacks) as session:
        # a model of its own: churn serves on `churn`, and a model has one serving version
        quirky = stack.versions.quirky
        fresh = session.registry.register("fresh", quirky.source_uri, run_id=quirky.run_id)
        Governance(session).promote(fresh.ref, S.APPROVED)
        controller = RolloutController(session)
        quiet = controller.deploy(fresh.ref, plan)
        assert quiet.outcome == "undecided"
        assert quiet.reasons[0].startswith(f"only 0 requests reached {fresh.ref}")
        assert controller.find("fresh") is None
        assert Governance(session).version(fresh.ref).state is S.APPROVED
        assert rollbacks.seen == []
        actions = [e.action for e in session.spine.audit_entries(subject="endpoint:fresh")]
        assert actions[-2:] == ["endpoint.undeployed", "rollout.undecided"]


def test_a_rollback_from_elsewhere_during_the_bake_ends_the_rollout_once(stack: Stack) -> None:
    """A monitor (another session) rolls the canary back while the rollout bakes it, in the
    step where the canary takes all the traffic and the serving version waits at weight 0:
    the rollout sees the rejection and stops, without routing or auditing a second time."""
    import threading

    champion, challenger = stack.versions.champion, stack.versions.challenger
    outcome: list[object] = []
    with stack.session() as session:
        Governance(session).promote(challenger.ref, S.APPROVED)
        url = session.server.endpoints()[0].url
        plan = RolloutPlan(steps=(1.0,), bake_seconds=60, check_seconds=0.5, slo=FAST)
        with Traffic(url, row()):
            baking = threading.Thread(
                target=lambda: outcome.append(
                    RolloutController(session).deploy(challenger.ref, plan)
                )
            )
            baking.start()
            with stack.session() as monitor:
                controller = RolloutController(monitor)
                deadline = time.monotonic() + 60
                while controller.challengers("churn") != [challenger.ref]:
                    assert time.monotonic() < deadline, "the canary never took the traffic"
                    time.sleep(0.2)
                weights = controller.find("churn").split.weights  # type: ignore[union-attr]
                assert weights == {champion.ref: 0.0, challenger.ref: 1.0}
                back = controller.rollback(
                    "churn", challenger=challenger.ref, reason="monitoring: answers breached"
                )
                assert dict(back.endpoint.split.weights) == {champion.ref: 1.0}
            baking.join(30)
        [result] = outcome
        assert result.outcome == "rolled_back"  # type: ignore[attr-defined]
        assert "rejected while it baked" in result.reasons[0]  # type: ignore[attr-defined]
        assert session.registry.get_version("churn", challenger.version).state is S.REJECTED
        assert session.registry.find_by_state("churn", S.SERVING)[0].ref == champion.ref
        rolled = [
            e
            for e in session.spine.audit_entries(subject="endpoint:churn")
            if e.action == "rollout.rolled_back"
        ]
        assert [e.reason for e in rolled] == ["monitoring: answers breached"]
        with pytest.raises(StackError, match="not rolling out"):
            RolloutController(session).rollback("churn", challenger=challenger.ref)


def test_a_server_killed_mid_bake_ends_the_rollout_truthfully(stack: Stack) -> None:
    """kill -9 of `bentoml serve` while a canary bakes: the rollout does not wait out its
    bake nor raise from its rollback route; it is closed (audited), the challenger is back to
    approved, and the error names the dead endpoint and what to run."""
    import os
    import signal
    import threading

    from stack.errors import EndpointDown

    champion, challenger = stack.versions.champion, stack.versions.challenger
    folder = stack.folder / ".mlstack" / "serving" / "churn"
    parent = int((folder / "server.pid").read_text())

    def kill_the_server() -> None:  # once the canary is loaded and routed
        deadline = time.monotonic() + 60
        while not list((folder / "isolated").glob("*.pid")) and time.monotonic() < deadline:
            time.sleep(0.1)
        os.kill(parent, signal.SIGKILL)

    with stack.session() as session:
        Governance(session).promote(challenger.ref, S.APPROVED)
        plan = RolloutPlan(steps=(0.5, 1.0), bake_seconds=120, check_seconds=0.5, slo=FAST)
        killer = threading.Thread(target=kill_the_server)
        killer.start()
        with pytest.raises(EndpointDown) as raised:
            RolloutController(session).deploy(challenger.ref, plan)
        killer.join()
        message = str(raised.value)
        assert "endpoint 'churn' is not running" in message
        assert "mlstack undeploy churn" in message and f"mlstack deploy {champion.ref}" in message
        assert session.registry.get_version("churn", challenger.version).state is S.APPROVED
        assert session.registry.find_by_state("churn", S.SERVING)[0].ref == champion.ref
        entries = session.spine.audit_entries(subject="endpoint:churn")
        closing = [e for e in entries if e.action.startswith("rollout.")]
        assert [e.action for e in closing] == ["rollout.started", "rollout.undecided"]
        assert session.spine.verify_audit().ok
        session.server.undeploy("churn")  # what the dead server left
