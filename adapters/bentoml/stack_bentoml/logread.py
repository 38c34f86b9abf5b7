"""An endpoint's prediction log read back, from wherever the stack keeps it (Parquet files
under `<home>/predictions/<endpoint>/`, or a PostgreSQL table): as rows (health), as the
contract's `LoggedRequest`s, as a stream of record batches (monitoring), or asked which of
some request ids were answered (label ingestion)."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from stack.contract.serving import LoggedRequest
from stack.monitoring.stream import BATCH_ROWS, logged_row
from stack.monitoring.window import ANSWERED
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
    batch_rows: int = BATCH_ROWS,
) -> Iterator[Any]:
    """The endpoint's rows in [`since`, `until`) as pyarrow RecordBatches of at most
    `batch_rows` rows in the `SCANNED` columns: the Parquet log read in record batches, a
    PostgreSQL log in pages of a server-side cursor (oldest first). Either way a window of
    any size is held one batch at a time."""
    log = config.prediction_log
    if log is None:
        from stack_bentoml.predictlog import scan_log

        yield from scan_log(predictions / endpoint, since=since, until=until, batch_rows=batch_rows)
        return
    import pyarrow as pa

    from stack_bentoml.postgres_log import PAGE_ROWS, scan_rows
    from stack_bentoml.predictlog import SCANNED, schema

    wanted = pa.schema([schema().field(name) for name in SCANNED])
    for page in scan_rows(
        log.connect_url(),
        endpoint,
        SCANNED,
        since=since,
        until=until,
        table=log.table,
        page_rows=min(batch_rows, PAGE_ROWS),
    ):
        columns = zip(*page, strict=True)
        yield pa.record_batch(
            [pa.array(column, field.type) for column, field in zip(columns, wanted, strict=True)],
            schema=wanted,
        )


def answered_among(
    config: BentoConfig, predictions: Path, endpoint: str, request_ids: Collection[str]
) -> set[str]:
    """Those of `request_ids` the endpoint answered (`live` or `fallback`, status 200),
    asked of the log by id, never read whole (`PredictionLogReader.answered_among`)."""
    log = config.prediction_log
    if log is not None:
        from stack_bentoml.postgres_log import answered_among as answered_in_table

        return answered_in_table(
            log.connect_url(), endpoint, request_ids, ANSWERED, table=log.table
        )
    from stack_bentoml.predictlog import answered_ids

    return answered_ids(predictions / endpoint, request_ids, ANSWERED)


def logged_request(row: dict[str, Any]) -> LoggedRequest:
    """One logged row as a request: its inputs and outputs one per record."""
    return logged_row(row)
