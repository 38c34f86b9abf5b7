"""A deploy that fails changes nothing and says why at once, against real `bentoml serve`.

The versions here load where they are logged and registered, and fail only where they are
served: their model file in the stack's BentoML model store is replaced after the import
(weights that do not unpickle, or a load that kills the worker outright, as a crash in native
code would). BentoML's arbiter restarts a worker that fails forever, so without the adapter
noticing, a deploy would wait out `ready_timeout_seconds` (1,800 s here: far past any slow start, so
waiting it out cannot pass for failing at once)."""

from __future__ import annotations

import os
import pickle
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from stack.config.rollout import RolloutPlan, ServiceLevels
from stack.contract.registry import ModelVersion
from stack.contract.states import LifecycleState as S
from stack.errors import StackError, Vetoed
from stack.governance.service import Governance
from stack.hooks import hookimpl
from stack.hooks.bus import HookBus, Veto
from stack.rollout import RolloutController
from stack.session import StackSession
from tests.adapters.bentoml.conftest import Stack, free_port, row
from tests.adapters.bentoml.models import FEATURES, Registered, home

STACK = """
name: failed-deploys
home: .mlstack
tracker: {{adapter: mlflow}}
registry: {{adapter: mlflow}}
server: {{adapter: bentoml, port: {port}, log_flush_seconds: 0.2, ready_timeout_seconds: 1800}}
spine: {{url: "sqlite:///.mlstack/spine.db"}}
"""
ENDPOINT = "churn"  # serves the champion for the whole module
GARBAGE = b"these bytes are not a model"
LOG_MARK = "--- the server's log, last lines:"


class _ExitsWhenLoaded:
    """Unpickling it ends the process at once, without a Python exception."""

    def __reduce__(self) -> tuple[Any, tuple[int]]:
        return (os._exit, (3,))


def _constant() -> object:
    """A custom (pyfunc) model: answers 0 to every row."""
    import mlflow.pyfunc

    class Constant(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
        def predict(self, context: object, model_input: Any, params: Any = None) -> Any:
            return [0] * len(model_input)

    return Constant()


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, registered_template: Registered
) -> Iterator[Stack]:
    """The champion serving on `churn` (the one server this module keeps running)."""
    folder = tmp_path_factory.mktemp("failed-deploys")
    (folder / "stack.yaml").write_text(STACK.format(port=free_port()))
    versions = registered_template.copy_to(home(folder))
    with StackSession.open(folder / "stack.yaml", base_dir=folder) as session:
        Governance(session).promote(versions.champion.ref, S.APPROVED)
        Governance(session).promote(versions.challenger.ref, S.APPROVED)
        RolloutController(session).deploy(
            versions.champion.ref, RolloutPlan(strategy="direct", endpoint=ENDPOINT)
        )
    built = Stack(folder, versions)
    yield built
    with built.session() as session:
        for endpoint in session.server.endpoints():
            session.server.undeploy(endpoint.name)


def unloadable(session: StackSession, payload: bytes, model: str = "churn") -> ModelVersion:
    """A new approved version of `model` whose model file, in the store the server loads
    from, holds `payload`."""
    import pandas as pd

    from stack.lifecycle import Lifecycle
    from stack_bentoml.server import BentoServer

    tracker = session.tracker
    run = tracker.start_run("unloadable")
    uri = tracker.log_model(
        run,
        _constant(),
        name="constant",
        framework="python",
        requirements=["pandas"],
        input_example=pd.DataFrame([row()], columns=FEATURES),
    )
    tracker.finish_run(run)
    version = Lifecycle(session).register(model, uri, run_id=run.run_id, reason="test")
    version = Governance(session).promote(version.ref, S.APPROVED)
    server = session.server
    assert isinstance(server, BentoServer)
    model_dir = Path(server._import(version).model_dir)  # as a deploy would import it
    flavor = yaml.safe_load((model_dir / "MLmodel").read_text())["flavors"]["python_function"]
    (model_dir / flavor["python_model"]).write_bytes(payload)
    return version


class ServerProcesses:
    """Every process of an endpoint's server seen while a deploy runs: the pid in its file,
    then every process below it, watched until the deploy returns."""

    def __init__(self, folder: Path, endpoint: str) -> None:
        self.pid_file = folder / ".mlstack" / "serving" / endpoint / "server.pid"
        self.seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> ServerProcesses:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            try:
                server = int(self.pid_file.read_text())
            except (OSError, ValueError):
                continue
            queue = [server]
            while queue:
                pid = queue.pop()
                self.seen.add(pid)
                for task in Path(f"/proc/{pid}/task").glob("*"):
                    try:
                        queue.extend(int(c) for c in (task / "children").read_text().split())
                    except (OSError, ValueError):
                        continue

    def running(self) -> list[int]:
        """Those still running (an exited one not yet reaped by its parent is not)."""
        left = []
        for pid in self.seen:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
            except OSError:
                continue
            if state != "Z":
                left.append(pid)
        return left


def log_part(error: BaseException) -> str:
    text = str(error)
    assert LOG_MARK in text, f"the error carries no server log:\n{text}"
    return text.partition(LOG_MARK)[2]


def audit_count(session: StackSession) -> int:
    return len(session.spine.audit_entries())


@pytest.mark.parametrize(
    ("endpoint", "strategy", "payload", "cause"),
    [
        ("direct", "direct", GARBAGE, "could not be loaded: UnpicklingError"),
        ("first-canary", "canary", GARBAGE, "could not be loaded: UnpicklingError"),
        (
            "worker-killed",
            "direct",
            pickle.dumps(_ExitsWhenLoaded()),
            "a worker exited before the server was ready",
        ),
    ],
)
@pytest.mark.timeout(900)  # past the bound below: a deploy that waits fails on it, by name
def test_a_server_that_cannot_load_its_version_fails_the_deploy_at_once_leaving_nothing(
    stack: Stack, endpoint: str, strategy: str, payload: bytes, cause: str
) -> None:
    plan = RolloutPlan(strategy=strategy, endpoint=endpoint, steps=(1.0,), bake_seconds=5)
    with stack.session() as session:
        # a model of its own: churn serves on `churn`, and a model has one serving version
        broken = unloadable(session, payload, model="unloadable")
        audited = audit_count(session)
        controller = RolloutController(session)
        started = time.monotonic()
        with ServerProcesses(stack.folder, endpoint) as processes, pytest.raises(StackError) as err:
            controller.deploy(broken.ref, plan)
        took = time.monotonic() - started

        message = str(err.value)
        assert took < 600, f"the deploy waited {took:.0f} s for a server that could not start"
        assert message.startswith(f"endpoint {endpoint!r} did not start: "), message
        assert cause in message.partition("\n")[0], message
        if payload == GARBAGE:  # the cause, as the server's own log has it
            assert "UnpicklingError" in log_part(err.value), message
        else:
            log_part(err.value)

        assert len(processes.seen) >= 2, "the server and a worker were seen"
        assert processes.running() == [], "a process of the failed server is still running"
        assert not (stack.folder / ".mlstack" / "serving" / endpoint).exists()
        assert controller.find(endpoint) is None
        assert session.registry.get_version(broken.model, broken.version).state is S.APPROVED
        assert audit_count(session) == audited, [
            (e.action, e.subject) for e in session.spine.audit_entries()[audited:]
        ]
        assert session.spine.verify_audit().ok
        # nothing claims it serves, so it can be rejected
        Governance(session).reject(broken.ref, reason="its model file is corrupt")


def test_a_running_endpoint_that_cannot_load_the_version_keeps_serving_as_before(
    stack: Stack,
) -> None:
    champion = stack.versions.champion
    with stack.session() as session:
        broken = unloadable(session, GARBAGE)
        controller = RolloutController(session)
        before = controller.find(ENDPOINT)
        assert before is not None
        server_pid = (stack.folder / ".mlstack" / "serving" / ENDPOINT / "server.pid").read_text()
        audited = audit_count(session)
        with pytest.raises(StackError) as err:
            controller.deploy(broken.ref, RolloutPlan(strategy="direct", endpoint=ENDPOINT))

        first = str(err.value).partition("\n")[0]
        assert f"{broken.ref} could not be loaded: UnpicklingError" in first, str(err.value)
        assert "UnpicklingError" in log_part(err.value)
        after = controller.find(ENDPOINT)
        assert after is not None and dict(after.split.weights) == {champion.ref: 1.0}
        assert (stack.folder / ".mlstack/serving" / ENDPOINT / "server.pid").read_text() == (
            server_pid
        )
        answer = httpx.post(f"{after.url}/predict", json=row(), timeout=10)
        assert answer.status_code == 200
        assert answer.headers["x-model-version"] == champion.ref
        assert session.registry.get_version("churn", broken.version).state is S.APPROVED
        assert session.registry.find_by_state("churn", S.SERVING)[0].ref == champion.ref
        assert audit_count(session) == audited
        assert session.spine.verify_audit().ok


def test_a_canary_the_endpoint_cannot_load_is_rolled_back_with_the_reason(stack: Stack) -> None:
    champion = stack.versions.champion
    with stack.session() as session:
        broken = unloadable(session, GARBAGE)
        controller = RolloutController(session)
        since = audit_count(session)
        plan = RolloutPlan(
            endpoint=ENDPOINT,
            steps=(0.5, 1.0),
            bake_seconds=30,
            slo=ServiceLevels(max_error_rate=0.05, min_requests=1),
        )
        result = controller.deploy(broken.ref, plan)

        assert result.outcome == "rolled_back"
        assert f"{broken.ref} could not take its traffic" in result.reasons[0]
        assert f"{broken.ref} could not be loaded" in result.reasons[0]
        assert "UnpicklingError" in result.reasons[0]  # from its own process, as it failed
        assert dict(result.endpoint.split.weights) == {champion.ref: 1.0}
        assert session.registry.get_version("churn", broken.version).state is S.REJECTED
        assert session.registry.find_by_state("churn", S.SERVING)[0].ref == champion.ref
        entries = session.spine.audit_entries(subject=f"endpoint:{ENDPOINT}")[-3:]
        assert [e.action for e in entries] == [  # traffic back first, then the verdict
            "endpoint.route_failed",
            "endpoint.routed",
            "rollout.rolled_back",
        ]
        routed = [e for e in session.spine.audit_entries()[since:] if e.action == "endpoint.routed"]
        assert all(e.payload["weights"].get(broken.ref, 0) == 0 for e in routed), (
            "no traffic change the server refused is audited as made"
        )
        answer = httpx.post(f"{result.endpoint.url}/predict", json=row(), timeout=10)
        assert answer.headers["x-model-version"] == champion.ref


class VetoServing:
    """Refuses every move to `serving` (a change freeze, decided after the gate passed)."""

    @hookimpl
    def on_promotion_requested(self, version: Any, target_state: str, actor: str) -> Any:
        return Veto("change freeze") if target_state == "serving" else None


def test_a_state_change_refused_after_the_server_moved_is_undone_and_both_moves_audited(
    stack: Stack,
) -> None:
    champion, challenger = stack.versions.champion, stack.versions.challenger
    bus = HookBus()
    bus.register(VetoServing())
    with StackSession.open(stack.folder / "stack.yaml", base_dir=stack.folder, hooks=bus) as s:
        controller = RolloutController(s)
        since = audit_count(s)
        with pytest.raises(Vetoed, match="change freeze"):
            controller.deploy(challenger.ref, RolloutPlan(strategy="direct", endpoint=ENDPOINT))

        after = controller.find(ENDPOINT)
        assert after is not None and dict(after.split.weights) == {champion.ref: 1.0}
        answer = httpx.post(f"{after.url}/predict", json=row(), timeout=10)
        assert answer.headers["x-model-version"] == champion.ref
        assert s.registry.get_version("churn", challenger.version).state is S.APPROVED
        assert s.registry.find_by_state("churn", S.SERVING)[0].ref == champion.ref
        new = s.spine.audit_entries()[since:]
        assert "endpoint.deployed" not in [e.action for e in new]
        routed = [dict(e.payload["weights"]) for e in new if e.action == "endpoint.routed"]
        assert routed == [{challenger.ref: 1.0}, {champion.ref: 1.0}], "both moves, in order"
        assert s.spine.verify_audit().ok
