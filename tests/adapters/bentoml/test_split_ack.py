"""A split is in force in every worker when `route` returns, and a rollout bakes only then.

Two workers per server: each acknowledges the revision it serves (acks.py), a version is
loaded in every worker before a split names it, and a split a worker never takes (a stopped
worker) is refused naming that worker, undone, and rolled back without a bake."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stack.config.rollout import RolloutPlan, ServiceLevels
from stack.contract.serving import TrafficSplit
from stack.contract.states import LifecycleState as S
from stack.governance.service import Governance
from stack.rollout import RolloutController
from stack.rollout.controller import BakeTick
from stack_bentoml import family
from stack_bentoml.acks import SplitNotAcknowledged, not_acknowledged
from stack_bentoml.spec import read_spec
from tests.adapters.bentoml.conftest import Stack, Traffic, champion_serving, row
from tests.adapters.bentoml.models import Registered

STACK = """
name: split-ack-test
home: .mlstack
tracker: {{adapter: mlflow}}
registry: {{adapter: mlflow}}
server: {{adapter: bentoml, port: {port}, workers: 2, log_flush_seconds: 0.2,
          split_ack_seconds: 2}}
spine: {{url: "sqlite:///.mlstack/spine.db"}}
"""
ENDPOINT = "churn"


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, registered_template: Registered
) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("split-ack")
    with champion_serving(folder, STACK, registered_template, ENDPOINT) as built:
        yield built


def endpoint_folder(stack: Stack) -> Path:
    return stack.folder / ".mlstack" / "serving" / ENDPOINT


def workers(stack: Stack) -> list[int]:
    server = int((endpoint_folder(stack) / "server.pid").read_text())
    found = family.workers(server)
    assert len(found) == 2, found
    return found


def revision(stack: Stack) -> int:
    return read_spec(endpoint_folder(stack) / "endpoint.json").revision


def challenger_parents(stack: Stack, ref: str) -> set[int]:
    """The workers under which a process of `ref` runs (isolation.py writes its pid file
    once its model is loaded)."""
    version = ref.partition("@")[2]
    parents = set()
    for path in (endpoint_folder(stack) / "isolated").glob(f"churn-v{version}.*.pid"):
        pid = int(path.read_text())
        if not family.zombie(pid):
            parents.add(int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1]))
    return parents


def test_a_split_is_written_once_every_worker_runs_its_versions(stack: Stack) -> None:
    """The first file routing to a new version is written only once it runs under every
    worker; `route` returns once every worker serves the split (each one's acknowledgement,
    and every answer of GET /endpoint)."""
    champion, challenger = stack.versions.champion, stack.versions.challenger
    folder = endpoint_folder(stack)
    running = workers(stack)
    seen: dict[int, set[int]] = {}  # each revision routing to it: the workers it ran under
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            spec = read_spec(folder / "endpoint.json")
            if spec.weights.get(challenger.ref) and spec.revision not in seen:
                seen[spec.revision] = challenger_parents(stack, challenger.ref)
            stop.wait(0.01)

    watcher = threading.Thread(target=watch)
    with stack.session() as session:
        server: Any = session.server
        server.add_version(challenger, endpoint=ENDPOINT)
        watcher.start()
        try:
            for split in (
                TrafficSplit({champion.ref: 0.5, challenger.ref: 0.5}, champion=champion.ref),
                TrafficSplit({champion.ref: 1.0}),
            ):
                routed = server.route(ENDPOINT, split)
                assert not_acknowledged(folder, running, routed.revision) == []
                answers = [httpx.get(f"{routed.url}/endpoint").json() for _ in range(30)]
                assert {a["revision"] for a in answers} == {routed.revision}
                assert {a["pid"] for a in answers} <= set(running)
        finally:
            stop.set()
            watcher.join()
    assert seen and all(parents == set(running) for parents in seen.values()), seen


def keep_loaded(stack: Stack, server: Any) -> None:
    """The challenger loaded in every worker at weight 0: a later split needs no load."""
    champion, challenger = stack.versions.champion, stack.versions.challenger
    server.add_version(challenger, endpoint=ENDPOINT)
    weights = {champion.ref: 1.0, challenger.ref: 0.0}
    server.route(ENDPOINT, TrafficSplit(weights, champion=champion.ref))


def test_a_split_a_worker_never_takes_is_refused_naming_it_and_undone(stack: Stack) -> None:
    champion, challenger = stack.versions.champion, stack.versions.challenger
    with stack.session() as session:
        server: Any = session.server
        keep_loaded(stack, server)
        before = read_spec(endpoint_folder(stack) / "endpoint.json")
        stuck, other = workers(stack)
        os.kill(stuck, signal.SIGSTOP)
        try:
            with pytest.raises(SplitNotAcknowledged) as refused:
                server.route(
                    ENDPOINT,
                    TrafficSplit({champion.ref: 0.5, challenger.ref: 0.5}, champion=champion.ref),
                )
        finally:
            os.kill(stuck, signal.SIGCONT)
    message = str(refused.value)
    assert "split not acknowledged" in message
    assert f"worker pid {stuck} (serves revision {before.revision})" in message
    assert f"worker pid {other}" not in message
    restored = read_spec(endpoint_folder(stack) / "endpoint.json")
    assert restored.revision == before.revision + 2  # the split, then the old split again
    assert restored.weights == before.weights


def test_a_rollout_bakes_only_on_a_split_every_worker_took(stack: Stack) -> None:
    """Stopped, a worker never takes the canary's split: the rollout is rolled back as
    `split not acknowledged` naming it, and no bake starts. With every worker taking it,
    each bake check finds every worker on the split in force."""
    champion, challenger = stack.versions.champion, stack.versions.challenger
    folder = endpoint_folder(stack)
    ticks: list[BakeTick] = []
    behind: list[list[int]] = []

    def check(tick: BakeTick) -> None:
        ticks.append(tick)
        behind.append(not_acknowledged(folder, workers(stack), revision(stack)))

    with stack.session() as session:
        keep_loaded(stack, session.server)  # the canary's split then needs no load
        Governance(session).promote(challenger.ref, S.APPROVED)
        split_revision = revision(stack) + 1
        stuck = workers(stack)[0]

        stop = threading.Event()

        def resume_once_undone() -> None:  # the worker comes back once the route was undone
            while not stop.is_set() and revision(stack) <= split_revision:
                stop.wait(0.05)
            os.kill(stuck, signal.SIGCONT)

        resumer = threading.Thread(target=resume_once_undone)
        plan = RolloutPlan(steps=(0.5, 1.0), bake_seconds=2, check_seconds=0.5)
        os.kill(stuck, signal.SIGSTOP)
        resumer.start()
        try:
            result = RolloutController(session, progress=check).deploy(challenger.ref, plan)
        finally:
            stop.set()
            resumer.join()
        assert result.outcome == "rolled_back"
        assert "split not acknowledged" in result.reasons[0]
        assert f"worker pid {stuck}" in result.reasons[0]
        assert ticks == [], "no bake on a split a worker does not serve"
        assert dict(result.endpoint.split.weights) == {champion.ref: 1.0}

        quirky = stack.versions.quirky
        Governance(session).promote(quirky.ref, S.APPROVED)
        slo = ServiceLevels(max_error_rate=0.5, min_requests=3)
        plan = RolloutPlan(steps=(1.0,), bake_seconds=2, check_seconds=0.5, slo=slo)
        url = result.endpoint.url
        with Traffic(url, row()):
            RolloutController(session, progress=check).deploy(quirky.ref, plan)
    assert ticks, "the bake checked the canary"
    assert all(lagging == [] for lagging in behind), "every check found every worker on it"
