"""Fixtures for the MLflow adapter: the embedded SQLite store and a real mlflow server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.plugins.manifest import AdapterContext
from tests.support.mlflow_server import MlflowServer
from tests.support.postgres import PostgresServer


@pytest.fixture
def context(tmp_path: Path) -> AdapterContext:
    return AdapterContext(home=tmp_path / ".mlstack", base_dir=tmp_path)


@pytest.fixture(scope="session")
def mlflow_server(
    postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MlflowServer]:
    """One server for the session, on its own PostgreSQL database, artifacts proxied."""
    with postgres_server.database() as url:
        server = MlflowServer(url, tmp_path_factory.mktemp("mlflow-server") / "artifacts")
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def sqlite_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One embedded store for the session: creating one runs MLflow's migrations (seconds).
    Tests keep apart by experiment and model names."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow-sqlite') / 'mlflow.db'}"


@pytest.fixture(params=["sqlite", pytest.param("server", marks=pytest.mark.postgres)])
def tracking_uri(request: pytest.FixtureRequest) -> str:
    """The embedded SQLite store, and a real tracking server backed by PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_uri"))
    server: MlflowServer = request.getfixturevalue("mlflow_server")
    return server.url
