"""`mlstack rollback` goes back, never forward: a second rollback does not return to the
version the first one took serving from (on the reference server)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.config.rollout import RolloutPlan
from stack.contract.states import LifecycleState as S
from stack.errors import StackError
from stack.lifecycle import Lifecycle
from stack.rollout import RolloutController
from stack.session import StackSession
from tests.rollout.test_bake_progress import MANIFEST, champion_and_challenger
from tests.support.sessions import memory_session

DIRECT = RolloutPlan(strategy="direct")


@pytest.fixture
def session(tmp_path: Path) -> Iterator[StackSession]:
    with memory_session(tmp_path, MANIFEST, "registry: memory\nserver: memory\n") as opened:
        champion_and_challenger(opened)  # churn@1 serving on `churn`, churn@2 approved
        yield opened


def serving(session: StackSession) -> str:
    return dict(session.server.endpoints()[0].split.weights).popitem()[0]


def test_a_second_rollback_goes_further_back_not_forward(session: StackSession) -> None:
    controller = RolloutController(session)
    assert controller.deploy("churn@2", DIRECT).outcome == "deployed"
    assert controller.rollback("churn").version == "churn@1"
    assert serving(session) == "churn@1"
    with pytest.raises(StackError, match="churn has no earlier serving version to roll back to"):
        controller.rollback("churn")
    assert serving(session) == "churn@1"
    assert session.registry.get_version("churn", 2).state is S.RETIRED


def test_a_version_rolled_out_again_can_be_rolled_back_to(session: StackSession) -> None:
    controller = RolloutController(session)
    controller.deploy("churn@2", DIRECT)
    controller.rollback("churn")  # churn@2 undone
    Lifecycle(session).register("churn", "file:///m")
    controller.deploy("churn@2", DIRECT)  # put back by hand: it serves again
    Lifecycle(session).transition("churn", 3, S.APPROVED, actor="ci")
    controller.deploy("churn@3", DIRECT)
    assert controller.rollback("churn").version == "churn@2"
