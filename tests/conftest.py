"""Shared fixtures: a working folder per test, spine URLs on SQLite and a real PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import Cli, cli_in
from tests.support.postgres import (
    DEFAULT_URL,
    PostgresServer,
    ThrowawayPostgres,
    answers,
    find_binaries,
)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test inside an empty folder, as a user would run mlstack in their project."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLSTACK_USER", "tester")
    monkeypatch.delenv("MLSTACK_STACK", raising=False)
    return tmp_path


@pytest.fixture
def cli(workdir: Path) -> Cli:
    """Run the installed `mlstack` command in the test's working folder."""
    return cli_in(workdir)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    given = os.environ.get("MLSTACK_TEST_POSTGRES_URL")
    if given:
        if not answers(given):
            pytest.fail(f"MLSTACK_TEST_POSTGRES_URL={given} does not answer")
        yield PostgresServer(given, "MLSTACK_TEST_POSTGRES_URL")
        return
    if answers(DEFAULT_URL):
        yield PostgresServer(DEFAULT_URL, "the machine's server on 127.0.0.1:5432")
        return
    binaries = find_binaries()
    if binaries is None:
        pytest.skip(
            "no PostgreSQL: MLSTACK_TEST_POSTGRES_URL is unset, nothing answers on "
            "127.0.0.1:5432, and initdb/pg_ctl are not installed (apt-get install postgresql)"
        )
    server = ThrowawayPostgres(binaries)
    url = server.start()
    try:
        yield PostgresServer(url, f"a throwaway cluster from {binaries}")
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def spine_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty spine database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'spine.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    with server.database() as url:
        yield url
