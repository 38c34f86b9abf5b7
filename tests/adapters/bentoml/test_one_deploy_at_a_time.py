"""One deploy at a time per endpoint: a second `mlstack deploy` while a rollout bakes is
refused naming it, having changed nothing; once that rollout's process is killed -9, the next
deploy first puts back what it left (its challenger's traffic, the open rollout, the
challenger in canary), as `mlstack doctor --repair` would, and says so."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.config.rollout import RolloutPlan
from stack.contract.states import LifecycleState as S
from stack.errors import RolloutInProgress
from stack.governance.service import Governance
from stack.orchestration.reconcile import Doctor
from stack.rollout import RolloutController
from tests.adapters.bentoml.conftest import STACK, Stack, champion_serving
from tests.adapters.bentoml.models import Registered
from tests.support.cli import MLSTACK


@pytest.fixture
def stack(tmp_path: Path, registered_template: Registered) -> Iterator[Stack]:
    with champion_serving(tmp_path, STACK, registered_template) as built:
        yield built


def rollout_actions(stack: Stack) -> list[str]:
    with stack.session() as session:
        entries = session.spine.audit_entries(subject="endpoint:churn")
    return [e.action for e in entries if e.action.startswith("rollout.")]


def test_a_second_deploy_is_refused_and_a_dead_ones_leftovers_are_put_back_first(
    stack: Stack,
) -> None:
    champion, challenger, third = (
        stack.versions.champion,
        stack.versions.challenger,
        stack.versions.quirky,
    )
    with stack.session() as session:
        for version in (challenger, third):
            Governance(session).promote(version.ref, S.APPROVED)
    # another process's canary, baking (no traffic: it holds, alive, for up to 10 minutes)
    deploying = subprocess.Popen(
        [str(MLSTACK), "deploy", challenger.ref, "--steps", "50,100", "--bake", "600"],
        cwd=stack.folder,
        env={**os.environ, "MLSTACK_USER": "tester"},
        stdout=subprocess.DEVNULL,
        stderr=(stack.folder / "deploy.err").open("w"),
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            with stack.session() as session:
                [endpoint] = session.server.endpoints()
            if challenger.ref in endpoint.split.weights:
                break
            if deploying.poll() is not None:
                pytest.fail(f"the first deploy ended: {(stack.folder / 'deploy.err').read_text()}")
            time.sleep(0.2)
        else:
            pytest.fail("the first deploy's canary never took traffic")
        assert rollout_actions(stack) == ["rollout.started"]

        with stack.session() as session:
            split = session.server.endpoints()[0].split
            with pytest.raises(RolloutInProgress) as refused:
                RolloutController(session).deploy(third.ref, RolloutPlan(strategy="direct"))
            message = str(refused.value)
            assert f"rolling out {challenger.ref}" in message
            assert f"pid {deploying.pid}" in message and "mlstack rollback churn" in message
            assert session.server.endpoints()[0].split == split  # nothing changed
            assert session.registry.get_version("churn", third.version).state is S.APPROVED
        assert rollout_actions(stack) == ["rollout.started"]
    finally:
        deploying.send_signal(signal.SIGKILL)
        deploying.wait(timeout=60)

    with stack.session() as session:
        result = RolloutController(session).deploy(champion.ref, RolloutPlan(strategy="direct"))
        repaired = "\n".join(result.repaired)
        assert "died" in repaired, repaired
        assert f"all traffic to {champion.ref}" in repaired, repaired
        assert f"{challenger.ref}: canary -> approved" in repaired, repaired
        assert dict(result.endpoint.split.weights) == {champion.ref: 1.0}
        assert session.registry.get_version("churn", challenger.version).state is S.APPROVED
        assert session.registry.find_by_state("churn", S.SERVING)[0].ref == champion.ref
        assert Doctor(session).examine() == []
        assert session.spine.verify_audit().ok
    assert rollout_actions(stack) == ["rollout.started", "rollout.rolled_back"]
