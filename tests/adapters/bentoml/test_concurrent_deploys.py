"""Deploys at the same time: to one endpoint, one deploy at a time and one server (never two
on one spec); to two endpoints, two ports (not one taken twice); a port taken under a
deploy, another chosen."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stack.config.rollout import RolloutPlan
from stack.contract.serving import Endpoint
from stack.contract.states import LifecycleState as S
from stack.governance.service import Governance
from stack.rollout import RolloutController
from stack.session import StackSession
from stack_bentoml import supervision
from tests.adapters.bentoml.conftest import STACK, free_port, row
from tests.adapters.bentoml.models import Registered, Versions, home


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


@contextlib.contextmanager
def approved(
    folder: Path, registered: Registered, port: int | None = None
) -> Iterator[tuple[Path, Versions]]:
    """A stack in `folder` with a copy of the `registered` versions, its champion and
    challenger approved; every endpoint undeployed after."""
    stack_file = folder / "stack.yaml"
    stack_file.write_text(STACK.format(port=port or free_port()))
    versions = registered.copy_to(home(folder))
    with StackSession.open(stack_file, base_dir=folder) as session:
        for version in (versions.champion, versions.challenger):
            Governance(session).promote(version.ref, S.APPROVED)
    try:
        yield stack_file, versions
    finally:
        with StackSession.open(stack_file, base_dir=folder) as session:
            for running in session.server.endpoints():
                session.server.undeploy(running.name)


def race(stack_file: Path, deploys: dict[str, tuple[str, str]]) -> dict[str, str]:
    """Each (version ref, endpoint) of `deploys` deployed directly at once, from a session of
    its own; the outcome or error of each, by key."""
    outcomes: dict[str, str] = {}

    def deploy(key: str, ref: str, endpoint: str) -> None:
        with StackSession.open(stack_file, base_dir=stack_file.parent) as session:
            plan = RolloutPlan(strategy="direct", endpoint=endpoint)
            try:
                outcomes[key] = RolloutController(session).deploy(ref, plan).outcome
            except Exception as exc:
                outcomes[key] = f"{type(exc).__name__}: {exc}"

    racers = [threading.Thread(target=deploy, args=(k, *d)) for k, d in deploys.items()]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=600)
    return outcomes


def endpoints(stack_file: Path) -> list[Endpoint]:
    with StackSession.open(stack_file, base_dir=stack_file.parent) as session:
        return session.server.endpoints()


def test_two_deploys_at_once_leave_one_server(
    tmp_path: Path, registered_template: Registered
) -> None:
    with approved(tmp_path, registered_template) as (stack_file, versions):
        refs = [versions.champion.ref, versions.challenger.ref]
        outcomes = race(stack_file, {ref: (ref, "raced") for ref in refs})
        # one deploy at a time: the one that came second waited for nothing and changed
        # nothing (RolloutInProgress), or came after the first had ended and re-routed its server
        deployed = [ref for ref, outcome in outcomes.items() if outcome == "deployed"]
        refused = [o for o in outcomes.values() if o.startswith("RolloutInProgress: ")]
        assert deployed and len(deployed) + len(refused) == 2, outcomes
        assert all("endpoint 'raced'" in o and "nothing was changed" in o for o in refused)
        folder = tmp_path / ".mlstack" / "serving" / "raced"
        assert len(servers_in(folder)) == 1
        [endpoint] = endpoints(stack_file)
        answered = httpx.post(f"{endpoint.url}/predict", json=row(), timeout=30)
        assert answered.status_code == 200
        assert answered.json()["model_version"] in (deployed if refused else outcomes)


def test_deploys_of_two_endpoints_at_once_take_two_ports(
    tmp_path: Path, registered_template: Registered
) -> None:
    with approved(tmp_path, registered_template) as (stack_file, versions):
        outcomes = race(
            stack_file,
            {"east": (versions.champion.ref, "east"), "west": (versions.challenger.ref, "west")},
        )
        assert outcomes == {"east": "deployed", "west": "deployed"}, outcomes
        served = endpoints(stack_file)
        assert len({e.url for e in served}) == 2
        for endpoint in served:
            assert httpx.post(f"{endpoint.url}/predict", json=row(), timeout=30).status_code == 200


def test_a_port_taken_before_the_server_binds_it_is_chosen_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registered_template: Registered
) -> None:
    """Another program binds the chosen port between the choice and the server's bind (a
    look that saw it free): the deploy starts on another port rather than failing."""
    port = free_port()
    looks: list[int] = []
    bindable = supervision._bindable

    def stale_look(host: str, candidate: int) -> bool:  # the first look predates the squatter
        looks.append(candidate)
        return True if len(looks) == 1 else bindable(host, candidate)

    monkeypatch.setattr(supervision, "_bindable", stale_look)
    with (
        approved(tmp_path, registered_template, port) as (stack_file, versions),
        socket.socket() as squatter,
    ):
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        outcomes = race(stack_file, {"one": (versions.champion.ref, "squatted")})
        assert outcomes == {"one": "deployed"}, outcomes
        [endpoint] = endpoints(stack_file)
        assert not endpoint.url.endswith(f":{port}")
        assert httpx.post(f"{endpoint.url}/predict", json=row(), timeout=30).status_code == 200
