"""Two deploys to one endpoint at the same time: one server, not two on one spec."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx

from stack.config.rollout import RolloutPlan
from stack.contract.states import LifecycleState as S
from stack.governance.service import Governance
from stack.rollout import RolloutController
from stack.session import StackSession
from tests.adapters.bentoml.conftest import STACK, free_port, row
from tests.adapters.bentoml.models import register_versions


def servers_in(folder: Path) -> list[int]:
    """Pids of `bentoml serve` processes working in `folder` (an endpoint's folder)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().split(b"\0")
            cwd = Path(proc / "cwd").resolve()
        except OSError:
            continue
        if b"serve" in command and cwd == folder.resolve():
            found.append(int(proc.name))
    return found


def test_two_deploys_at_once_leave_one_server(tmp_path: Path) -> None:
    (tmp_path / "stack.yaml").write_text(STACK.format(port=free_port()))
    with StackSession.open(tmp_path / "stack.yaml", base_dir=tmp_path) as session:
        versions = register_versions(session.adapter_context())
        for version in (versions.champion, versions.challenger):
            Governance(session).promote(version.ref, S.APPROVED)
    outcomes: dict[str, str] = {}

    def deploy(ref: str) -> None:
        with StackSession.open(tmp_path / "stack.yaml", base_dir=tmp_path) as session:
            plan = RolloutPlan(strategy="direct", endpoint="raced")
            try:
                outcomes[ref] = RolloutController(session).deploy(ref, plan).outcome
            except Exception as exc:
                outcomes[ref] = f"{type(exc).__name__}: {exc}"

    racers = [
        threading.Thread(target=deploy, args=(v.ref,))
        for v in (versions.champion, versions.challenger)
    ]
    try:
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(timeout=600)
        assert set(outcomes.values()) == {"deployed"}, outcomes
        folder = tmp_path / ".mlstack" / "serving" / "raced"
        assert len(servers_in(folder)) == 1  # the second deploy re-routed the first's server
        with StackSession.open(tmp_path / "stack.yaml", base_dir=tmp_path) as session:
            [endpoint] = session.server.endpoints()
        answered = httpx.post(f"{endpoint.url}/predict", json=row(), timeout=30)
        assert answered.status_code == 200
        assert answered.json()["model_version"] in outcomes
    finally:
        with StackSession.open(tmp_path / "stack.yaml", base_dir=tmp_path) as session:
            for running in session.server.endpoints():
                session.server.undeploy(running.name)
