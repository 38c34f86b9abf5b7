"""The prediction log in PostgreSQL (production): one table, written with COPY in batches.

The table is created on first use with an index on (endpoint, ts), the query every health
check and monitoring window makes; a table from before requests were tagged gets its
`traffic` column (rows already there read as live). The connection string comes from the
environment of the serving process, never from the endpoint file, so the password stays
off the disk."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from stack_bentoml.predictlog import Prediction

COLUMNS = tuple(f.name for f in fields(Prediction))  # the table's columns, in order
CONNECT_TIMEOUT_SECONDS = 5
#: Rows fetched per page when a window is streamed (`scan_rows`).
PAGE_ROWS = 8_192
#: Request ids asked about per query (`answered_among`).
ID_CHUNK = 10_000


def _ddl(table: str) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {table} (
    id BIGSERIAL PRIMARY KEY,
    request_id TEXT NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    endpoint TEXT NOT NULL,
    model_version TEXT NOT NULL,
    role TEXT NOT NULL,
    status SMALLINT NOT NULL,
    latency_ms DOUBLE PRECISION NOT NULL,
    inputs TEXT NOT NULL,
    output TEXT,
    error TEXT,
    live_output TEXT,
    traffic TEXT NOT NULL DEFAULT 'live'
);
ALTER TABLE {table} ADD COLUMN IF NOT EXISTS traffic TEXT NOT NULL DEFAULT 'live';
CREATE INDEX IF NOT EXISTS {table}_endpoint_ts ON {table} (endpoint, ts);
CREATE INDEX IF NOT EXISTS {table}_request_id ON {table} (request_id);
"""


def libpq_url(url: str) -> str:
    """SQLAlchemy-style URLs (`postgresql+psycopg://`) as libpq takes them."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+')[0]}{sep}{rest}"


def _check_table(table: str) -> str:
    if not table.replace("_", "").isalnum() or not table[0].isalpha():
        raise ValueError(f"prediction log table name {table!r}: letters, digits and '_' only")
    return table


class PostgresSink:
    def __init__(
        self,
        url: str,
        table: str = "mlstack_predictions",
        *,
        connect_timeout: int = CONNECT_TIMEOUT_SECONDS,
    ) -> None:
        """`connect_timeout`: seconds a connection may take (libpq counts 2 at least)."""
        self.url = libpq_url(url)
        self.table = _check_table(table)
        self.connect_timeout = connect_timeout
        self._connection: Any = None

    def _connect(self) -> Any:
        import psycopg

        if self._connection is None or self._connection.closed:
            # a database that does not answer is an outage like one that refuses: the rows
            # are spilled at once, not after the system's TCP timeout (a SIGTERM waits on it)
            self._connection = psycopg.connect(
                self.url, autocommit=False, connect_timeout=self.connect_timeout
            )
            with self._connection.transaction(), self._connection.cursor() as cursor:
                cursor.execute(_ddl(self.table))
        return self._connection

    def write(self, entries: list[Prediction]) -> None:
        connection = self._connect()
        try:
            statement = f"COPY {self.table} ({', '.join(COLUMNS)}) FROM STDIN"
            with (
                connection.transaction(),
                connection.cursor() as cursor,
                cursor.copy(statement) as copy,
            ):
                for e in entries:
                    copy.write_row(
                        (
                            e.request_id,
                            datetime.fromtimestamp(e.ts, UTC),
                            e.endpoint,
                            e.model_version,
                            e.role,
                            e.status,
                            e.latency_ms,
                            e.inputs,
                            None if e.output is None else json.dumps(e.output),
                            e.error,
                            None if e.live_output is None else json.dumps(e.live_output),
                            e.traffic,
                        )
                    )
        except Exception:
            connection.close()  # reconnect on the next batch
            raise

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()


def read_rows(
    url: str,
    endpoint: str,
    *,
    since: datetime | None,
    until: datetime | None = None,
    table: str = "mlstack_predictions",
) -> list[dict[str, Any]]:
    """The endpoint's rows in [since, until), oldest first, each with its `traffic`: the
    whole window in memory (health reads it; monitoring streams it with `scan_rows`)."""
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(libpq_url(url), row_factory=dict_row) as connection:
        query = _query(connection, table, COLUMNS, endpoint, since, until)
        if query is None:
            return []
        return list(connection.execute(*query).fetchall())


def scan_rows(
    url: str,
    endpoint: str,
    columns: Sequence[str],
    *,
    since: datetime | None,
    until: datetime | None = None,
    table: str = "mlstack_predictions",
    page_rows: int = PAGE_ROWS,
) -> Iterator[list[tuple[Any, ...]]]:
    """The endpoint's rows in [since, until), oldest first, as pages of at most `page_rows`
    tuples of `columns` (`traffic` reads `live` in a table from before requests were
    tagged), through a server-side cursor: a window of any size in the memory of one page.
    Nothing when the table does not exist."""
    import psycopg

    if page_rows < 1:
        raise ValueError(f"page_rows must be at least 1, got {page_rows}")
    with psycopg.connect(libpq_url(url)) as connection:
        query = _query(connection, table, columns, endpoint, since, until)
        if query is None:
            return
        with connection.cursor(name="mlstack_log_scan") as cursor:
            cursor.execute(*query)
            while page := cursor.fetchmany(page_rows):
                yield page


def answered_among(
    url: str,
    endpoint: str,
    request_ids: Iterable[str],
    roles: Iterable[str],
    *,
    table: str = "mlstack_predictions",
    chunk: int = ID_CHUNK,
) -> set[str]:
    """Those of `request_ids` the endpoint logged with one of `roles` and status 200, asked
    `chunk` ids at a time (`request_id = ANY(...)`, on the table's request_id index): the
    log is never read whole. An empty set without the table."""
    import psycopg

    ids = sorted(set(request_ids))
    query = (
        f"SELECT DISTINCT request_id FROM {_check_table(table)} WHERE endpoint = %s "
        "AND request_id = ANY(%s) AND role = ANY(%s) AND status = 200"
    )
    found: set[str] = set()
    if not ids:
        return found
    try:
        with psycopg.connect(libpq_url(url)) as connection:
            for first in range(0, len(ids), chunk):
                params = (endpoint, ids[first : first + chunk], sorted(roles))
                found.update(row[0] for row in connection.execute(query, params))
    except psycopg.errors.UndefinedTable:
        pass
    return found


def _query(
    connection: Any,
    table: str,
    columns: Sequence[str],
    endpoint: str,
    since: datetime | None,
    until: datetime | None,
) -> tuple[str, list[Any]] | None:
    """The SELECT of the endpoint's rows in [since, until), oldest first, and its
    parameters; None without the table. `traffic` reads as the constant `live` in a table
    no worker has written since requests were tagged (it lacks the column)."""
    present = connection.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
        "AND table_schema = ANY(current_schemas(false))",
        (_check_table(table).lower(),),  # unquoted names are folded to lower case
    ).fetchall()
    names = {row["column_name"] if isinstance(row, dict) else row[0] for row in present}
    if not names:
        return None
    listed = ", ".join(c if c in names or c != "traffic" else "'live' AS traffic" for c in columns)
    query = f"SELECT {listed} FROM {table} WHERE endpoint = %s"
    params: list[Any] = [endpoint]
    if since is not None:
        query += " AND ts >= %s"
        params.append(since)
    if until is not None:
        query += " AND ts < %s"
        params.append(until)
    return query + " ORDER BY ts", params
