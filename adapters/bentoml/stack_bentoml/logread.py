"""An endpoint's prediction log read back, from wherever the stack keeps it (Parquet files
under `<home>/predictions/<endpoint>/`, or a PostgreSQL table), as rows or as the contract's
`LoggedRequest`s."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from stack.contract.serving import LoggedRequest
from stack.monitoring.stream import logged_row
from stack_bentoml.config import BentoConfig


def log_rows(
    config: BentoConfig,
    predictions: Path,
    endpoint: str,
    since: datetime | None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """The endpoint's rows logged in [`since`, `until`), oldest first; `predictions` is the
    folder of the Parquet logs (used when the stack names no PostgreSQL log)."""
    log = config.prediction_log
    if log is not None:
        from stack_bentoml.postgres_log import read_rows

        return read_rows(log.connect_url(), endpoint, since=since, until=until, table=log.table)
    from stack_bentoml.predictlog import read_log

    table = read_log(predictions / endpoint, since=since, until=until)
    rows: list[dict[str, Any]] = table.to_pylist()
    return rows


def log_batches(
    config: BentoConfig,
    predictions: Path,
    endpoint: str,
    since: datetime | None,
    until: datetime | None = None,
    batch_rows: int = 65_536,
) -> Iterator[Any]:
    """The endpoint's rows in [`since`, `until`) as pyarrow RecordBatches of at most
    `batch_rows` rows, read from the Parquet log in batches; a PostgreSQL log is read whole
    and handed out in batches (its rows are not streamed yet)."""
    log = config.prediction_log
    if log is None:
        from stack_bentoml.predictlog import scan_log

        yield from scan_log(predictions / endpoint, since=since, until=until, batch_rows=batch_rows)
        return
    import pyarrow as pa

    from stack_bentoml.predictlog import SCANNED, schema

    rows = log_rows(config, predictions, endpoint, since, until)
    wanted = pa.schema([schema().field(name) for name in SCANNED])
    for start in range(0, len(rows), batch_rows):
        chunk = rows[start : start + batch_rows]
        yield pa.RecordBatch.from_pylist([{k: r.get(k) for k in SCANNED} for r in chunk], wanted)


def logged_request(row: dict[str, Any]) -> LoggedRequest:
    """One logged row as a request: its inputs and outputs one per record."""
    return logged_row(row)
