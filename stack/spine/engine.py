"""Engines for the spine: SQLite tuned for several writer processes, PostgreSQL as is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

# Writers wait this long for one another before an error; appends take milliseconds.
SQLITE_BUSY_TIMEOUT_MS = 60_000


def create_spine_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine whose transactions are safe for concurrent writers on either backend.

    SQLite: every transaction starts with BEGIN IMMEDIATE, so a writer takes the database lock
    before it reads the audit chain's head (pysqlite's own deferred BEGIN would let two writers
    read the same head). WAL lets readers go on meanwhile.
    """
    parsed = make_url(url)
    if parsed.drivername == "postgresql":  # psycopg 3 is the driver we ship with
        parsed = parsed.set(drivername="postgresql+psycopg")
    if not parsed.drivername.startswith("sqlite"):
        return create_engine(parsed, echo=echo, pool_pre_ping=True)

    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        parsed, echo=echo, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the lock up front; readers (see `reader`) read a WAL snapshot.
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


_BEGIN_OPTION = "mlstack_sqlite_begin"


def reader(engine: Engine) -> Engine:
    """The same engine for read-only work, each transaction one snapshot of the database.

    SQLite: transactions begin DEFERRED, so reads do not queue behind writers for the
    database lock, and WAL keeps the snapshot of the first read until the transaction ends.
    PostgreSQL: REPEATABLE READ, READ ONLY, so every statement of a transaction sees the same
    committed state (under the default READ COMMITTED, two statements could see an append
    between them). A read-only transaction never fails with a serialization error.
    """
    if is_postgresql(engine):
        return engine.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    return engine.execution_options(**{_BEGIN_OPTION: "DEFERRED"})


def is_postgresql(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"
