"""Lineage, lifecycle events, pipeline runs and schema migrations of the spine store."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from stack.errors import SpineError
from stack.spine import NodeKind, NodeRef, SpineStore
from stack.spine.timeutil import now_utc
from tests.support.postgres import ThrowawayPostgres, answers, find_binaries

DATA = NodeRef(NodeKind.DATA_SNAPSHOT, "sha256:abc")
VIEW = NodeRef(NodeKind.FEATURE_VIEW, "customer_stats@v1")
RUN = NodeRef(NodeKind.RUN, "run-1")
MODEL = NodeRef(NodeKind.MODEL_VERSION, "churn@1")
ENDPOINT = NodeRef(NodeKind.ENDPOINT_REVISION, "churn-api#1")
REPORT = NodeRef(NodeKind.REPORT, "drift-2026-11-25")


@pytest.fixture
def store(spine_url: str) -> Iterator[SpineStore]:
    store = SpineStore.open(spine_url)
    yield store
    store.close()


def _chain(store: SpineStore) -> None:
    store.link(DATA, VIEW, "materialized")
    store.link(VIEW, RUN, "fed")
    store.link(RUN, MODEL, "produced")
    store.link(MODEL, ENDPOINT, "deployed")
    store.link(ENDPOINT, REPORT, "monitored")


def test_upstream_walks_the_whole_chain_nearest_first(store: SpineStore) -> None:
    _chain(store)
    edges = store.upstream(ENDPOINT)
    assert [e.source for e in edges] == [MODEL, RUN, VIEW, DATA]
    assert edges[0].relation == "deployed"


def test_downstream_walks_the_whole_chain(store: SpineStore) -> None:
    _chain(store)
    assert [e.target for e in store.downstream(DATA)] == [VIEW, RUN, MODEL, ENDPOINT, REPORT]


def test_recording_an_edge_twice_keeps_one(store: SpineStore) -> None:
    store.link(RUN, MODEL, "produced")
    store.link(RUN, MODEL, "produced")
    assert len(store.upstream(MODEL)) == 1


def test_node_attributes_are_kept_and_merged(store: SpineStore) -> None:
    store.link(DATA, RUN, "fed", attributes={DATA: {"rows": 10}})
    store.link(DATA, MODEL, "fed", attributes={DATA: {"columns": 3}})
    assert store.node_attributes(DATA) == {"rows": 10, "columns": 3}
    assert store.node_attributes(REPORT) is None


def test_a_walk_expands_each_node_once_level_by_level(store: SpineStore) -> None:
    """A diamond and a cycle: every edge once, nearest level first, each level in the order
    its edges were recorded; the walk ends."""
    a, b, c, d = (NodeRef(NodeKind.REPORT, name) for name in "abcd")
    store.link(a, c, "x")
    store.link(a, b, "x")
    store.link(b, d, "x")
    store.link(c, d, "x")
    store.link(d, a, "loop")
    walked = [(e.source.key, e.target.key) for e in store.downstream(a)]
    assert walked == [("a", "c"), ("a", "b"), ("b", "d"), ("c", "d"), ("d", "a")]
    assert [(e.source.key, e.target.key) for e in store.upstream(d)] == [
        ("b", "d"),
        ("c", "d"),
        ("a", "c"),
        ("a", "b"),
        ("d", "a"),
    ]


def test_unknown_node_has_no_lineage(store: SpineStore) -> None:
    assert store.upstream(NodeRef(NodeKind.RUN, "nope")) == []


def test_events_are_recorded_in_order(store: SpineStore) -> None:
    store.record_event("on_run_finished", "run-1", {"state": "succeeded"})
    store.record_event("on_drift_detected", "churn", {"share": 0.4})
    assert [e.name for e in store.events()] == ["on_run_finished", "on_drift_detected"]
    [drift] = store.events(subject="churn")
    assert drift.payload == {"share": 0.4}


def test_pipeline_run_and_its_steps_round_trip(store: SpineStore) -> None:
    store.start_pipeline_run("r1", recipe="quickstart", orchestrator="local")
    started = now_utc()
    store.record_step("r1", "train", status="running", started_at=started)
    store.record_step(
        "r1",
        "train",
        status="succeeded",
        started_at=started,
        finished_at=now_utc(),
        output_uri="/x/train.pkl",
        output_digest="d" * 64,
    )
    store.finish_pipeline_run("r1", state="succeeded")
    run = store.pipeline_run("r1")
    assert run is not None
    assert (run.state, run.recipe) == ("succeeded", "quickstart")
    [step] = run.steps
    assert (step.step, step.status, step.output_uri) == ("train", "succeeded", "/x/train.pkl")
    assert store.pipeline_runs(recipe="quickstart")[0].run_id == "r1"
    assert store.pipeline_run("missing") is None


def test_opening_again_is_idempotent(spine_url: str) -> None:
    first = SpineStore.open(spine_url)
    first.audit(actor="a", action="x", subject="s")
    first.close()
    second = SpineStore.open(spine_url)
    assert second.schema_revision() == "0008"
    assert len(second.audit_entries()) == 1
    second.close()


def test_the_head_revision_is_alembics_head() -> None:
    """The revision `migrate` compares with before it skips alembic is alembic's own head."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from stack.spine.store import MIGRATIONS, head_revision

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert head_revision() == ScriptDirectory.from_config(config).get_current_head()


def test_opening_a_current_spine_does_not_import_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'spine.db'}"
    SpineStore.open(url).close()
    code = (
        "import sys; from stack.spine import SpineStore; "
        f"SpineStore.open({url!r}).close(); print('alembic' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_a_schema_newer_than_this_mlstack_is_refused(spine_url: str) -> None:
    store = SpineStore.open(spine_url)
    with store.engine.begin() as connection:
        connection.execute(sa.text("UPDATE spine_schema_version SET version_num = '9999'"))
    store.close()
    with pytest.raises(SpineError, match="upgrade mlstack"):
        SpineStore.open(spine_url)


@pytest.mark.postgres
def test_throwaway_postgres_from_the_machine_binaries() -> None:
    """The fallback a fresh machine uses: start a private cluster, use it, stop it."""
    binaries = find_binaries()
    if binaries is None:
        pytest.skip("initdb/pg_ctl are not installed (apt-get install postgresql)")
    server = ThrowawayPostgres(binaries)
    url = server.start()
    try:
        store = SpineStore.open(url)
        store.audit(actor="ci", action="test", subject="throwaway")
        assert store.verify_audit().ok
        store.close()
    finally:
        server.stop()
    assert not answers(url)


def test_sqlite_reads_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    """A writer holding the database lock must not stall `audit log` or `verify`."""
    import sqlite3
    import threading

    path = tmp_path / "spine.db"
    store = SpineStore.open(f"sqlite:///{path}")
    store.audit(actor="a", action="x", subject="s")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE audit_head SET seq = seq WHERE id = 1")
    results: list[int] = []
    reading = threading.Thread(target=lambda: results.append(store.verify_audit().entries))
    reading.start()
    reading.join(timeout=10)
    finished_while_locked = not reading.is_alive()
    writer.execute("ROLLBACK")
    writer.close()
    reading.join()
    store.close()
    assert finished_while_locked
    assert results == [1]


def test_an_alert_firing_before_the_per_route_migration_is_kept(spine_url: str) -> None:
    """A spine at 0006 with an alert firing: upgraded, the alert is still listed, with no
    route recorded as told (the next check tells each route once)."""
    from alembic import command
    from alembic.config import Config

    from stack.spine.store import MIGRATIONS

    engine = sa.create_engine(spine_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0006")
        connection.execute(
            sa.text(
                "INSERT INTO alert_states (key, name, labels, since) "
                "VALUES ('k', 'MlstackMonitoringBreach', '{\"model\": \"churn\"}', "
                "'2026-11-30T12:00:00.000000Z')"
            )
        )
    engine.dispose()
    store = SpineStore.open(spine_url)
    try:
        [alert] = store.firing_alerts()
        assert (alert.name, alert.labels, alert.resolved, alert.told) == (
            "MlstackMonitoringBreach",
            {"model": "churn"},
            None,
            {},
        )
    finally:
        store.close()
