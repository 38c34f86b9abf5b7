"""The prediction log: every answer (and every shadow answer), off the request path.

A request hands its record to a queue and returns; one thread per worker process writes the
queue to parquet files partitioned by hour (`<dir>/date=YYYY-MM-DD/hour=HH/<pid>-<n>.parquet`)
every `flush_seconds`, and on shutdown. Shadow predictions are computed on that thread too,
so a challenger in shadow costs the caller nothing. Files are written under a temporary
name and renamed, so a reader never sees half a file."""

from __future__ import annotations

import functools
import json
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol


@functools.cache
def schema() -> Any:
    """One schema for every file, so that a file with no errors (an all-null column) reads
    back beside one with some."""
    import pyarrow as pa

    return pa.schema(
        [
            ("request_id", pa.string()),
            ("ts", pa.timestamp("us", tz="UTC")),
            ("endpoint", pa.string()),
            ("model_version", pa.string()),
            ("role", pa.string()),
            ("status", pa.int16()),
            ("latency_ms", pa.float64()),
            ("inputs", pa.string()),
            ("output", pa.string()),
            ("error", pa.string()),
            ("live_output", pa.string()),
        ]
    )


@dataclass(slots=True)
class Prediction:
    request_id: str
    ts: float  # unix seconds
    endpoint: str
    model_version: str
    role: str  # live | shadow | fallback
    status: int
    latency_ms: float
    inputs: str  # the validated request body: a JSON list of records
    output: Any
    error: str | None = None
    live_output: Any = None


@dataclass(slots=True)
class ShadowJob:
    """A live answer whose request the shadow versions must also answer."""

    live: Prediction
    rows: list[list[Any]]
    shadows: tuple[str, ...]


class Sink(Protocol):
    """Where batches of log rows go: parquet files, or a PostgreSQL table."""

    def write(self, entries: list[Prediction]) -> None: ...

    def close(self) -> None: ...


class PredictionLogWriter:
    def __init__(
        self,
        sink: Sink,
        *,
        flush_seconds: float,
        shadow_predict: Callable[[str, list[list[Any]]], Any] | None = None,
        fallback: Sink | None = None,
    ) -> None:
        self.sink = sink
        self.fallback = fallback
        self.flush_seconds = flush_seconds
        self.shadow_predict = shadow_predict
        self._queue: queue.SimpleQueue[Prediction | ShadowJob | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def log(self, entry: Prediction | ShadowJob) -> None:
        self._queue.put(entry)

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, then stop."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def _run(self) -> None:
        pending: list[Prediction] = []
        deadline = time.monotonic() + self.flush_seconds
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                item = ...  # type: ignore[assignment]
            if item is None:
                self._write(pending)
                self.sink.close()
                return
            if isinstance(item, Prediction):
                pending.append(item)
            elif isinstance(item, ShadowJob):
                pending.append(item.live)
                pending.extend(self._shadow(item))
            if time.monotonic() >= deadline:
                self._write(pending)
                pending = []
                deadline = time.monotonic() + self.flush_seconds

    def _shadow(self, job: ShadowJob) -> Iterable[Prediction]:
        assert self.shadow_predict is not None
        for ref in job.shadows:
            started = time.perf_counter()
            output, error, status = None, None, 200
            try:
                output = self.shadow_predict(ref, job.rows)
            except Exception as exc:
                error, status = f"{type(exc).__name__}: {exc}", 500
            yield Prediction(
                request_id=job.live.request_id,
                ts=job.live.ts,
                endpoint=job.live.endpoint,
                model_version=ref,
                role="shadow",
                status=status,
                latency_ms=(time.perf_counter() - started) * 1000,
                inputs=job.live.inputs,
                output=output,
                error=error,
                live_output=job.live.output,
            )

    def _write(self, entries: list[Prediction]) -> None:
        if not entries:
            return
        try:
            self.sink.write(entries)
            return
        except Exception as exc:  # a log outage must not take the endpoint down; say so
            where = "kept in the fallback files" if self.fallback else "lost"
            print(f"mlstack prediction log: {len(entries)} rows {where}: {exc}", flush=True)
        if self.fallback is not None:
            self.fallback.write(entries)


class ParquetSink:
    """Files partitioned by hour: `<dir>/date=YYYY-MM-DD/hour=HH/<pid>-<n>.parquet`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._sequence = 0

    def close(self) -> None:
        pass

    def write(self, entries: list[Prediction]) -> None:
        import pyarrow.parquet as pq

        by_hour: dict[int, list[Prediction]] = {}
        for entry in entries:
            by_hour.setdefault(int(entry.ts // 3600), []).append(entry)
        for hour_number, rows in by_hour.items():
            moment = datetime.fromtimestamp(hour_number * 3600, UTC)
            folder = self.directory / f"date={moment:%Y-%m-%d}" / f"hour={moment:%H}"
            folder.mkdir(parents=True, exist_ok=True)
            self._sequence += 1
            name = f"{os.getpid()}-{time.time_ns()}-{self._sequence}.parquet"
            tmp = folder / f".{name}.tmp"
            with pq.ParquetWriter(tmp, schema()) as writer:
                for first in range(0, len(rows), _CHUNK):
                    writer.write_batch(_batch(rows[first : first + _CHUNK]))
                    time.sleep(0)  # let the request thread in between chunks
            os.replace(tmp, folder / name)


#: Rows converted per step: converting Python values holds the GIL, and the worker's event
#: loop waits for it; small steps keep that wait (and the tail latency) short.
_CHUNK = 128


def _batch(rows: list[Prediction]) -> Any:
    import pyarrow as pa

    return pa.record_batch(
        [
            pa.array([r.request_id for r in rows], pa.string()),
            pa.array([int(r.ts * 1_000_000) for r in rows], pa.timestamp("us", tz="UTC")),
            pa.array([r.endpoint for r in rows], pa.string()),
            pa.array([r.model_version for r in rows], pa.string()),
            pa.array([r.role for r in rows], pa.string()),
            pa.array([r.status for r in rows], pa.int16()),
            pa.array([r.latency_ms for r in rows], pa.float64()),
            pa.array([r.inputs for r in rows], pa.string()),
            pa.array([_json(r.output) for r in rows], pa.string()),
            pa.array([r.error for r in rows], pa.string()),
            pa.array([_json(r.live_output) for r in rows], pa.string()),
        ],
        schema=schema(),
    )


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def read_log(
    directory: Path, *, since: datetime | None = None, until: datetime | None = None
) -> Any:
    """The log as a pyarrow Table (rows in [since, until)); empty when nothing was logged."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    files = sorted(str(p) for p in directory.glob("date=*/hour=*/*.parquet"))
    if not files:
        return schema().empty_table()
    dataset = ds.dataset(files, format="parquet", schema=schema())
    when = pa.timestamp("us", tz="UTC")
    condition = None
    if since is not None:
        condition = ds.field("ts") >= pa.scalar(since, when)
    if until is not None:
        before = ds.field("ts") < pa.scalar(until, when)
        condition = before if condition is None else condition & before
    return dataset.to_table(filter=condition).sort_by("ts")
