"""The prediction log in PostgreSQL (production): every request a row, health read from it,
and an outage of the database never loses rows (they wait in the spill folder, then are
replayed into the table)."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from stack_bentoml.config import BentoConfig, PredictionLogConfig
from stack_bentoml.postgres_log import PostgresSink, libpq_url, read_rows
from stack_bentoml.predictlog import Prediction, PredictionLogWriter, read_log
from stack_bentoml.server import BentoServer
from stack_bentoml.spill import SpillFolder, waiting
from tests.adapters.bentoml.conftest import Stack, free_port, row
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.postgres


@pytest.fixture
def database(postgres_server: PostgresServer) -> Iterator[str]:
    with postgres_server.database() as url:
        yield url


def test_every_request_is_a_row_in_postgresql(stack: Stack, database: str) -> None:
    with stack.session() as session:
        context = session.adapter_context()
    config = BentoConfig(
        port=free_port(), log_flush_seconds=0.2, prediction_log=PredictionLogConfig(url=database)
    )
    server = BentoServer(config, context)
    endpoint = server.deploy(stack.versions.champion, endpoint="pg-logged")
    try:
        sent = 200

        async def drive() -> list[int]:
            async with httpx.AsyncClient(limits=httpx.Limits(max_connections=16)) as client:
                responses = await asyncio.gather(
                    *(client.post(f"{endpoint.url}/predict", json=row()) for _ in range(sent))
                )
            return [r.status_code for r in responses]

        assert asyncio.run(drive()) == [200] * sent
        count = 0
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and count < sent:
            with psycopg.connect(libpq_url(database)) as connection:
                try:
                    count = connection.execute(
                        "SELECT count(*) FROM mlstack_predictions WHERE endpoint = 'pg-logged'"
                    ).fetchone()[0]
                except psycopg.errors.UndefinedTable:  # the first flush creates it
                    count = 0
            time.sleep(0.2)
        assert count == sent
        health = server.health("pg-logged")
        assert health.versions[stack.versions.champion.ref].requests == sent
        assert read_log(context.home / "predictions" / "pg-logged").num_rows == 0
    finally:
        server.undeploy("pg-logged")


def test_rows_a_database_outage_refuses_are_replayed_into_it_when_it_is_back(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """The outage is real: the database does not exist (every connection is refused) until
    the test creates it."""
    name = f"mlstack_outage_{uuid.uuid4().hex[:12]}"
    url = make_url(postgres_server.admin_url).set(database=name)
    admin = libpq_url(postgres_server.admin_url)
    spill = SpillFolder(tmp_path / "spill")
    down = PredictionLogWriter(
        PostgresSink(url.render_as_string(hide_password=False)), flush_seconds=60, spill=spill
    )
    for i in range(50):
        down.log(Prediction(f"r{i}", time.time(), "e", "m@1", "live", 200, 1.0, "[{}]", [0]))
    down.close()
    assert waiting(tmp_path / "spill").rows == 50
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        back = PredictionLogWriter(
            PostgresSink(url.render_as_string(hide_password=False)), flush_seconds=60, spill=spill
        )
        back.close()  # its one flush replays what waits
        assert back.outage() is None
        replayed = read_rows(url.render_as_string(hide_password=False), "e", since=None)
        assert sorted(r["request_id"] for r in replayed) == sorted(f"r{i}" for i in range(50))
        assert {r["traffic"] for r in replayed} == {"live"}
        assert waiting(tmp_path / "spill").files == 0
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_table_from_before_tags_reads_as_live_and_takes_tagged_rows(database: str) -> None:
    url = libpq_url(database)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            "CREATE TABLE mlstack_predictions (id BIGSERIAL PRIMARY KEY, request_id TEXT NOT "
            "NULL, ts TIMESTAMPTZ NOT NULL, endpoint TEXT NOT NULL, model_version TEXT NOT "
            "NULL, role TEXT NOT NULL, status SMALLINT NOT NULL, latency_ms DOUBLE PRECISION "
            "NOT NULL, inputs TEXT NOT NULL, output TEXT, error TEXT, live_output TEXT)"
        )
        connection.execute(
            "INSERT INTO mlstack_predictions (request_id, ts, endpoint, model_version, role, "
            "status, latency_ms, inputs) VALUES ('old', now(), 'e', 'm@1', 'live', 200, 1, '[]')"
        )
    assert [r["traffic"] for r in read_rows(database, "e", since=None)] == ["live"]
    sink = PostgresSink(database)
    sink.write(
        [Prediction("new", time.time(), "e", "m@1", "live", 200, 1.0, "[{}]", [0], traffic="test")]
    )
    sink.close()
    by_id = {r["request_id"]: r["traffic"] for r in read_rows(database, "e", since=None)}
    assert by_id == {"old": "live", "new": "test"}


def test_a_database_that_never_answers_is_an_outage_not_a_hang(tmp_path: Path) -> None:
    """A port that takes connections and never says a word (a frozen server): the flush
    gives up after the sink's connect timeout and spills, so a SIGTERM's last flush ends."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        writer = PredictionLogWriter(
            PostgresSink(f"postgresql://nobody@127.0.0.1:{port}/none", connect_timeout=2),
            flush_seconds=60,
            spill=SpillFolder(tmp_path / "spill"),
        )
        writer.log(Prediction("r", time.time(), "e", "m@1", "live", 200, 1.0, "[{}]", [0]))
        writer.close(timeout=60)
    outage = writer.outage()
    assert outage is not None and outage.spilled == 1, outage
    assert waiting(tmp_path / "spill").rows == 1
