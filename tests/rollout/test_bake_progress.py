"""What `mlstack deploy` shows while a rollout bakes: every health check of every stage is
handed to the progress callback, with the verdict; the CLI view prints it to a log."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import ClassVar

import pytest
from rich.console import Console

from stack.cli.bake_view import BakeView
from stack.config.rollout import RolloutPlan
from stack.contract.roles import Role
from stack.contract.serving import HealthReport, VersionHealth
from stack.contract.states import LifecycleState as S
from stack.lifecycle import Lifecycle
from stack.plugins import AdapterManifest, RoleBinding
from stack.rollout import BakeTick, RolloutController
from stack.session import StackSession
from tests.support.memory import MemoryServer
from tests.support.sessions import memory_session


class TrafficServer(MemoryServer):
    """The reference server, with 50 requests per routed version at each check; `failing`
    versions answer every fifth with an error."""

    failing: ClassVar[set[str]] = set()

    def health(self, endpoint: str, *, since: datetime | None = None) -> HealthReport:
        split = self._get(endpoint).split
        versions = {
            ref: VersionHealth(50, 10 if ref in self.failing else 0, 12.0)
            for ref, weight in split.weights.items()
            if weight > 0
        }
        return HealthReport(endpoint, True, 50 * len(versions), 0.0, 12.0, versions)


MANIFEST = AdapterManifest(
    name="memory",
    package="mlstack-memory",
    roles={
        Role.REGISTRY: RoleBinding("tests.support.memory:MemoryRegistry"),
        Role.SERVER: RoleBinding("tests.rollout.test_bake_progress:TrafficServer"),
    },
)


@pytest.fixture
def session(tmp_path: Path) -> Iterator[StackSession]:
    with memory_session(tmp_path, MANIFEST, "registry: memory\nserver: memory\n") as opened:
        yield opened


def champion_and_challenger(session: StackSession) -> None:
    lifecycle = Lifecycle(session)
    for _ in (1, 2):
        lifecycle.register("churn", "file:///m")
    lifecycle.transition("churn", 1, S.APPROVED, actor="ci")
    lifecycle.transition("churn", 1, S.SERVING, actor="ci")
    lifecycle.transition("churn", 2, S.APPROVED, actor="ci")
    session.server.deploy(session.registry.get_version("churn", 1), endpoint="churn")


PLAN = RolloutPlan(strategy="canary", steps=(0.25, 1.0), bake_seconds=0)


def test_every_stage_reports_its_checks_and_verdict(session: StackSession) -> None:
    champion_and_challenger(session)
    ticks: list[BakeTick] = []
    controller = RolloutController(session, progress=ticks.append, sleep=lambda _: None)
    result = controller.deploy("churn@2", PLAN)
    assert result.outcome == "promoted"
    assert [(t.stage, t.final, t.reasons) for t in ticks] == [
        ("canary: 25% to churn@2", True, ()),
        ("canary: 100% to churn@2", True, ()),
    ]
    assert ticks[0].report.versions["churn@2"].requests == 50


def test_a_breach_is_shown_with_its_reason_and_the_log_view_prints_it(
    session: StackSession,
) -> None:
    champion_and_challenger(session)
    TrafficServer.failing = {"churn@2"}
    out = io.StringIO()
    view = BakeView(Console(file=out, force_terminal=False, width=200))
    try:
        with view:
            result = RolloutController(session, progress=view, sleep=lambda _: None).deploy(
                "churn@2", PLAN
            )
    finally:
        TrafficServer.failing = set()
    assert result.outcome == "rolled_back"
    lines = out.getvalue().splitlines()
    assert lines[0] == "churn: canary: 25% to churn@2 (bake 0 s)"
    assert lines[1].startswith("churn: canary: 25% to churn@2 [0/0 s] churn@1 50 req 0.0% errors")
    assert "churn@2 50 req 20.0% errors: breach: " in lines[1]
    assert len(lines) == 2  # the rollout stopped at its first stage


def test_on_a_terminal_the_view_draws_each_stage_as_a_table(session: StackSession) -> None:
    champion_and_challenger(session)
    out = io.StringIO()
    view = BakeView(Console(file=out, force_terminal=True, width=120, color_system=None))
    with view:
        RolloutController(session, progress=view, sleep=lambda _: None).deploy("churn@2", PLAN)
    drawn = out.getvalue()
    for text in ("churn: canary: 25% to churn@2", "churn: canary: 100% to churn@2", "p99 ms"):
        assert text in drawn
    assert drawn.count("held its SLOs") >= 2


def test_a_log_is_told_of_a_hold_once_then_of_its_end() -> None:
    """Past its bake a rollout checks again every few seconds while it holds: a log gets the
    first hold and the verdict, not a line per check (145 lines in 5 minutes)."""
    quiet = HealthReport("churn", True, 0, 0.0, None, {})
    baked = HealthReport("churn", True, 50, 0.0, 12.0, {"churn@2": VersionHealth(50, 0, 12.0)})
    hold = ("only 0 requests reached churn@2: at least 20 are needed to judge it",)
    out = io.StringIO()
    view = BakeView(Console(file=out, force_terminal=False, width=200))
    stage = "canary: 100% to churn@2"
    with view:
        view(BakeTick("churn", "churn@2", stage, 4.0, 8.0, quiet, (), False))
        for elapsed in range(8, 20, 2):
            view(BakeTick("churn", "churn@2", stage, elapsed, 8.0, quiet, (), True, hold))
        view(BakeTick("churn", "churn@2", stage, 20.0, 8.0, baked, (), True))
    lines = out.getvalue().splitlines()
    assert lines == [
        "churn: canary: 100% to churn@2 (bake 8 s)",
        f"churn: canary: 100% to churn@2 [8/8 s] holding, cannot judge yet: {hold[0]}",
        "churn: canary: 100% to churn@2 [20/8 s] churn@2 50 req 0.0% errors: held its SLOs",
    ]
