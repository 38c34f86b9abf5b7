"""An endpoint's prediction log read back, from wherever the stack keeps it (Parquet files
under `<home>/predictions/<endpoint>/`, or a PostgreSQL table), as rows or as the contract's
`LoggedRequest`s."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stack.contract.serving import LoggedRequest
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


def logged_request(row: dict[str, Any]) -> LoggedRequest:
    """One logged row as a request: its inputs and outputs one per record."""
    inputs = json.loads(row["inputs"]) if row["inputs"] else []
    output = json.loads(row["output"]) if row["output"] is not None else None
    records = tuple(inputs) if isinstance(inputs, list) else (inputs,)
    if isinstance(output, list) and len(output) == len(records):
        outputs: tuple[object, ...] = tuple(output)
    else:  # a failed request, or a model answering the whole request with one value
        outputs = (output,) * len(records)
    moment = row["ts"]
    return LoggedRequest(
        request_id=str(row["request_id"]),
        at=moment if moment.tzinfo else moment.replace(tzinfo=UTC),
        model_version=str(row["model_version"]),
        role=str(row["role"]),
        status=int(row["status"]),
        inputs=records,
        outputs=outputs,
        traffic=str(row.get("traffic") or "live"),
    )
