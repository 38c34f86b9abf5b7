"""A stack with MLflow (registry) and BentoML (server) in a temporary folder, three real
model versions registered, and helpers to drive an endpoint with HTTP traffic."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from stack.session import StackSession
from tests.adapters.bentoml.models import FEATURES, Registered, Versions, home
from tests.support.ports import free_port

STACK = """
name: serving-test
home: .mlstack
tracker: {{adapter: mlflow}}
registry: {{adapter: mlflow}}
server: {{adapter: bentoml, port: {port}, log_flush_seconds: 0.2}}
spine: {{url: "sqlite:///.mlstack/spine.db"}}
"""


@dataclass
class Stack:
    folder: Path
    versions: Versions

    def session(self) -> StackSession:
        return StackSession.open(self.folder / "stack.yaml", base_dir=self.folder)


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, registered_template: Registered
) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("serving")
    (folder / "stack.yaml").write_text(STACK.format(port=free_port()))
    built = Stack(folder, registered_template.copy_to(home(folder)))
    yield built
    with built.session() as session:
        for endpoint in session.server.endpoints():
            session.server.undeploy(endpoint.name)


@contextlib.contextmanager
def champion_serving(
    folder: Path, stack_yaml: str, registered: Registered, endpoint: str = "churn"
) -> Iterator[Stack]:
    """A stack from `stack_yaml` (a template taking `{port}`, its registry MLflow's embedded
    store in `.mlstack`) in `folder`, the `registered` versions copied into it and the
    champion serving alone on `endpoint`; every endpoint undeployed after."""
    from stack.config.rollout import RolloutPlan
    from stack.contract.states import LifecycleState
    from stack.governance.service import Governance
    from stack.rollout import RolloutController

    (folder / "stack.yaml").write_text(stack_yaml.format(port=free_port()))
    versions = registered.copy_to(home(folder))
    with StackSession.open(folder / "stack.yaml", base_dir=folder) as session:
        Governance(session).promote(versions.champion.ref, LifecycleState.APPROVED)
        RolloutController(session).deploy(
            versions.champion.ref, RolloutPlan(strategy="direct", endpoint=endpoint)
        )
    built = Stack(folder, versions)
    try:
        yield built
    finally:
        with built.session() as session:
            for running in session.server.endpoints():
                session.server.undeploy(running.name)


def row(**overrides: float) -> dict[str, float]:
    values = {name: 0.5 for name in FEATURES}
    values.update(overrides)
    return values


@dataclass
class Traffic:
    """Requests sent from a thread until stopped: every status and answering version."""

    url: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    answers: list[tuple[int, str | None]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Traffic:
        def loop() -> None:
            with httpx.Client(timeout=10) as client:
                while not self._stop.is_set():
                    response = client.post(
                        f"{self.url}/predict", json=self.body, headers=self.headers
                    )
                    self.answers.append(
                        (response.status_code, response.headers.get("x-model-version"))
                    )

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(15)
