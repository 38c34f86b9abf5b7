"""The prediction log in PostgreSQL (production): every request a row, health read from it,
and an outage of the database never loses rows (they go to the local files instead)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from stack_bentoml.config import BentoConfig, PredictionLogConfig
from stack_bentoml.postgres_log import PostgresSink, libpq_url
from stack_bentoml.predictlog import ParquetSink, Prediction, PredictionLogWriter, read_log
from stack_bentoml.server import BentoServer
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


def test_a_database_outage_keeps_the_rows_in_files(tmp_path: Path) -> None:
    unreachable = PostgresSink("postgresql://nobody@127.0.0.1:1/none")
    writer = PredictionLogWriter(
        unreachable, flush_seconds=0.05, fallback=ParquetSink(tmp_path / "log")
    )
    for i in range(50):
        writer.log(Prediction(f"r{i}", time.time(), "e", "m@1", "live", 200, 1.0, "[{}]", [0]))
    writer.close()
    assert sorted(read_log(tmp_path / "log").column("request_id").to_pylist()) == sorted(
        f"r{i}" for i in range(50)
    )
