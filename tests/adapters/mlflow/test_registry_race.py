"""Two processes promoting two versions to `serving` at the same moment leave exactly one
serving version, whichever backend holds the registry; a promotion that loses the race to
create the `serving` alias retries and serves; a version a promotion displaces is retired.
For models and prompts alike (one lifecycle: stack_mlflow/lifecycle.py)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from mlflow import MlflowClient

from stack.contract.registry import Registry
from stack.contract.states import LifecycleState as S
from stack.plugins.manifest import AdapterContext
from stack_mlflow.config import MlflowRegistryConfig, MlflowTrackerConfig
from stack_mlflow.registry import MlflowRegistry
from stack_mlflow.tracker import MlflowTracker
from tests.support.postgres import PostgresServer

PROMOTER = """
import sys, time
from pathlib import Path
from stack.contract.states import LifecycleState
from stack.plugins.manifest import AdapterContext
from stack_mlflow.config import MlflowRegistryConfig
from stack_mlflow.registry import MlflowRegistry

uri, kind, model, version, go = sys.argv[1:5] + [Path(sys.argv[5])]
registry = MlflowRegistry(
    MlflowRegistryConfig(tracking_uri=uri), AdapterContext(Path(".mlstack"), Path("."))
)
target = registry.prompts() if kind == "prompt" else registry
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
target.set_state(model, int(version), LifecycleState.SERVING)
"""


@dataclass(frozen=True)
class Kind:
    """A registry of one kind (`model` or `prompt`) and a way to add a version to it."""

    name: str
    registry: Registry
    add: Callable[[str], int]


def make_kind(
    kind: str, uri: str, context: AdapterContext, at_end: Callable[[Callable[[], None]], object]
) -> Kind:
    """A registry of `kind` on the store at `uri`; what must be closed is given to `at_end`."""
    registry = MlflowRegistry(MlflowRegistryConfig(tracking_uri=uri), context)
    if kind == "prompt":
        prompts = registry.prompts()
        template = context.base_dir / "prompt.txt"

        def add_prompt(name: str) -> int:
            template.write_text(f"Answer {uuid.uuid4().hex}: {{{{question}}}}\n")
            return int(prompts.register(name, str(template)).version)

        return Kind("prompt", prompts, add_prompt)
    tracker = MlflowTracker(MlflowTrackerConfig(tracking_uri=uri), context)
    run = tracker.start_run("race")
    experiment = tracker.client.get_run(run.run_id).info.experiment_id
    at_end(lambda: tracker.finish_run(run))

    def add_model(name: str) -> int:
        logged = tracker.client.create_logged_model(experiment, source_run_id=run.run_id)
        source = f"models:/{logged.model_id}"
        return int(registry.register(name, source, run_id=run.run_id).version)

    return Kind("model", registry, add_model)


@pytest.fixture(params=["model", "prompt"])
def kind(request: pytest.FixtureRequest, tracking_uri: str, context: AdapterContext) -> Kind:
    return make_kind(request.param, tracking_uri, context, request.addfinalizer)


def alias_holder(tracking_uri: str, kind: str, name: str) -> int:
    """The version MLflow's own `serving` alias names, read past mlstack."""
    client = MlflowClient(tracking_uri)
    if kind == "prompt":
        return int(client.get_prompt_version_by_alias(name, "serving").version)
    return int(client.get_model_version_by_alias(name, "serving").version)


def state_tag(tracking_uri: str, kind: str, name: str, version: int) -> str:
    """The state tag as MLflow's UI shows it."""
    client = MlflowClient(tracking_uri)
    if kind == "prompt":
        return str(client.get_prompt_version(name, version).tags["mlstack.state"])
    return str(client.get_model_version(name, str(version)).tags["mlstack.state"])


def test_a_promotion_retires_the_version_it_displaces(kind: Kind, tracking_uri: str) -> None:
    registry, add = kind.registry, kind.add
    name = f"displace-{uuid.uuid4().hex[:8]}"
    first, second = add(name), add(name)
    for version in (first, second):
        registry.set_state(name, version, S.APPROVED)
        registry.set_state(name, version, S.SERVING)

    assert registry.get_version(name, first).state == S.RETIRED
    assert state_tag(tracking_uri, kind.name, name, first) == "retired"
    assert [v.version for v in registry.find_by_state(name, S.SERVING)] == [second]
    assert alias_holder(tracking_uri, kind.name, name) == second


def test_racing_promotions_leave_one_serving_version(
    kind: Kind, tracking_uri: str, tmp_path: Path
) -> None:
    registry, add = kind.registry, kind.add
    name = f"race-{uuid.uuid4().hex[:8]}"
    for round_number in range(2):
        versions = []
        for _ in range(2):
            version = add(name)
            registry.set_state(name, version, S.APPROVED)
            versions.append(version)
        go = tmp_path / f"go-{round_number}"
        promoters = [
            subprocess.Popen(
                [sys.executable, "-c", PROMOTER, tracking_uri, kind.name, name, str(v), str(go)],
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for v in versions
        ]
        for promoter in promoters:
            assert promoter.stdout is not None
            assert promoter.stdout.readline().strip() == "ready"
        go.write_text("")
        for promoter in promoters:
            _, err = promoter.communicate(timeout=240)
            assert promoter.returncode == 0, err

        serving = registry.find_by_state(name, S.SERVING)
        assert len(serving) == 1
        states = [v.state for v in registry.versions(name)]
        assert states.count(S.SERVING) == 1
        winner = serving[0].version
        assert winner in versions
        assert alias_holder(tracking_uri, kind.name, name) == winner
        loser = next(v for v in versions if v != winner)
        assert registry.get_version(name, loser).state == S.RETIRED


@pytest.mark.postgres
@pytest.mark.parametrize("kind_name", ["model", "prompt"])
def test_a_promotion_that_loses_the_insert_of_the_alias_retries_and_serves(
    kind_name: str,
    postgres_server: PostgresServer,
    context: AdapterContext,
) -> None:
    """The race made certain: another writer inserts the `serving` alias while this
    promotion's own insert waits on it (the store read no alias, then its INSERT hits the
    unique key once the other commits); the promotion retries and serves."""
    with postgres_server.database() as url, ExitStack() as at_end:  # MLflow's store, here
        kind = make_kind(kind_name, url, context, at_end.callback)
        name = f"insert-race-{uuid.uuid4().hex[:8]}"
        other, promoted = kind.add(name), kind.add(name)
        kind.registry.set_state(name, promoted, S.APPROVED)
        engine = sa.create_engine(url)
        try:
            with ThreadPoolExecutor(1) as pool, engine.connect() as rival:
                rival.execute(
                    sa.text(
                        "INSERT INTO registered_model_aliases (name, alias, version) "
                        "VALUES (:name, 'serving', :version)"
                    ),
                    {"name": name, "version": other},
                )  # not committed yet: the promotion's INSERT waits on this row
                promotion = pool.submit(kind.registry.set_state, name, promoted, S.SERVING)
                wait_for_a_lock_wait(engine, promotion)
                rival.commit()
                assert promotion.result().state == S.SERVING
        finally:
            engine.dispose()
        assert alias_holder(url, kind.name, name) == promoted
        assert [v.version for v in kind.registry.find_by_state(name, S.SERVING)] == [promoted]


def wait_for_a_lock_wait(engine: sa.Engine, promotion: Future[object]) -> None:
    """Until a session of this database waits on a lock (the promotion's INSERT)."""
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    while not promotion.done():
        with engine.connect() as watcher:
            if watcher.execute(query).scalar_one() > 0:
                return
        time.sleep(0.05)
    promotion.result()  # it ended without waiting: say why
    raise AssertionError("the promotion never waited on the other writer's alias")
