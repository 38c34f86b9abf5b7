"""The prediction log of batch scoring: what a scheduled job predicted, kept so that the
monitoring loop reads it exactly as it reads an endpoint's log (`monitoring.source: batch`).

Each batch is one parquet file under `<home>/monitoring/batches/<name>/`, one row per scored
record: its id (what late labels name, like a request id), the time, the model version, the
inputs and the prediction."""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stack.atomic import atomic_path
from stack.contract.serving import LoggedRequest
from stack.errors import StackError
from stack.session import StackSession
from stack.spine.timeutil import now_utc


def batch_root(session: StackSession) -> Path:
    return session.home / "monitoring" / "batches"


class BatchPredictionLog:
    """Implements `PredictionLogReader` over the batches recorded under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def record(
        self,
        name: str,
        *,
        version: str,
        ids: Sequence[str],
        records: Sequence[Mapping[str, Any]],
        predictions: Sequence[Any],
        at: datetime | None = None,
    ) -> Path:
        """Store one batch; returns its file."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not len(ids) == len(records) == len(predictions):
            raise StackError(
                f"a batch needs one id and one prediction per record: {len(ids)} ids, "
                f"{len(records)} records, {len(predictions)} predictions"
            )
        moment = at or now_utc()
        table = pa.table(
            {
                "request_id": [str(i) for i in ids],
                "ts": pa.array([moment] * len(ids), pa.timestamp("us", tz="UTC")),
                "model_version": [version] * len(ids),
                "inputs": [json.dumps(dict(r), default=float) for r in records],
                "output": [json.dumps(_plain(p)) for p in predictions],
            }
        )
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{moment:%Y%m%dT%H%M%S%f}-{os.getpid()}.parquet"
        with atomic_path(path) as partial:
            pq.write_table(table, partial)
        return path

    def logged(
        self, endpoint: str, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[LoggedRequest]:
        import pyarrow.parquet as pq

        found: list[LoggedRequest] = []
        for path in sorted((self.root / endpoint).glob("*.parquet")):
            for row in pq.read_table(path).to_pylist():
                at = row["ts"] if row["ts"].tzinfo else row["ts"].replace(tzinfo=UTC)
                if (since is not None and at < since) or (until is not None and at >= until):
                    continue
                found.append(
                    LoggedRequest(
                        request_id=row["request_id"],
                        at=at,
                        model_version=row["model_version"],
                        role="live",
                        status=200,
                        inputs=(json.loads(row["inputs"]),),
                        outputs=(json.loads(row["output"]),),
                    )
                )
        return sorted(found, key=lambda r: r.at)

    def answered_among(self, endpoint: str, request_ids: Collection[str]) -> set[str]:
        """Those of `request_ids` scored in batch `endpoint` (every scored record is an
        answer): a scan of the `request_id` column alone, filtered by the ids."""
        from stack.monitoring.stream import ids_among

        return ids_among(self._dataset(endpoint), request_ids)

    def log_batches(
        self,
        endpoint: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        batch_rows: int = 65_536,
    ) -> Iterator[Any]:
        """The batch's records scored in [`since`, `until`) as pyarrow RecordBatches of at
        most `batch_rows` rows, in the endpoint log's streamed columns (each record a `live`
        answer with status 200; its output a one-element JSON list, one output per record):
        what `monitor run` streams (`stack.monitoring.stream.PredictionLogScanner`)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        from stack.monitoring.stream import period

        dataset = self._dataset(endpoint)
        if dataset is None:
            return
        when = pa.timestamp("us", tz="UTC")
        for scanned in dataset.to_batches(filter=period(since, until), batch_size=batch_rows):
            for start in range(0, scanned.num_rows, batch_rows):
                part = scanned.slice(start, batch_rows)
                rows = part.num_rows
                yield pa.record_batch(
                    {
                        "request_id": part.column("request_id"),
                        "ts": pc.cast(part.column("ts"), when),
                        "model_version": part.column("model_version"),
                        "role": pa.array(["live"] * rows, pa.string()),
                        "status": pa.array([200] * rows, pa.int16()),
                        "inputs": part.column("inputs"),
                        "output": pc.binary_join_element_wise("[", part.column("output"), "]", ""),
                        "traffic": pa.array(["live"] * rows, pa.string()),
                    }
                )

    def _dataset(self, endpoint: str) -> Any:
        """The batch's files as one pyarrow dataset; None when none were recorded."""
        import pyarrow.dataset as ds

        files = sorted(str(p) for p in (self.root / endpoint).glob("*.parquet"))
        return ds.dataset(files, format="parquet") if files else None


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers, so they are stored as JSON."""
    return value.item() if hasattr(value, "item") else value
