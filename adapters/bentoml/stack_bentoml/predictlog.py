"""The prediction log: every answer (and every shadow answer), off the request path.

A request hands its record to a queue and returns; one thread per worker process takes what
queued every `DRAIN_SECONDS` (no request wakes it) and writes it to parquet files
partitioned by hour (`<dir>/date=YYYY-MM-DD/hour=HH/<pid>-<n>.parquet`) every
`flush_seconds`, and on shutdown. Shadow predictions are computed on that thread too, so a
challenger in shadow costs the caller nothing. Files are written under a temporary
name and renamed, so a reader never sees half a file.

A flush the log refuses (a folder that cannot be written, a database that is down) is not
lost: its rows go to the spill folder (spill.py) and are replayed into the log at the first
flush it takes again; meanwhile `outage()` says since when, why, and how many rows wait (the
endpoint's `/readyz` and `GET /endpoint` carry it to `mlstack rollout status`). When the
spill folder fails too, up to `MAX_HELD` rows are held in memory and retried each flush.
A worker stopped with SIGTERM writes (or spills) every row it holds; one killed with SIGKILL
loses the rows of at most one flush interval (`log_flush_seconds`)."""

from __future__ import annotations

import functools
import json
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from stack.atomic import atomic_path

if TYPE_CHECKING:
    from stack_bentoml.spill import SpillFolder

#: Rows held in memory per worker while neither the log nor the spill folder takes them.
MAX_HELD = 100_000
#: How often the writer takes the rows queued (shadow predictions run then), in seconds.
DRAIN_SECONDS = 0.05


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
            ("traffic", pa.string()),  # absent from older files: read as live
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
    traffic: str = "live"  # the request's x-mlstack-traffic: live | bake | test | synthetic


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


@dataclass(frozen=True, slots=True)
class LogOutage:
    """The log has refused this worker's flushes since `since` (unix seconds)."""

    since: float
    error: str  # the last refusal
    spilled: int = 0  # rows this worker put in the spill folder since, to be replayed
    held: int = 0  # rows held in memory: the spill folder refused them too
    lost: int = 0  # rows dropped: more than MAX_HELD were held
    spill_dir: str = ""

    def sentence(self) -> str:
        """`prediction log unwritable since 09:41:07 UTC (PermissionError: …); 812 rows
        spilled to /home/…/prediction-spill/churn, replayed when it is writable again`."""
        moment = datetime.fromtimestamp(self.since, UTC)
        text = f"prediction log unwritable since {moment:%Y-%m-%d %H:%M:%S} UTC ({self.error})"
        if self.spilled:
            text += f"; {self.spilled} rows spilled to {self.spill_dir}"
        if self.held:
            text += f"; {self.held} rows held in memory (the spill folder refuses them too)"
        if self.lost:
            text += f"; {self.lost} rows LOST"
        return text + "; replayed when the log is writable again"


class PredictionLogWriter:
    def __init__(
        self,
        sink: Sink,
        *,
        flush_seconds: float,
        shadow_predict: Callable[[str, list[list[Any]]], Any] | None = None,
        spill: SpillFolder | None = None,
    ) -> None:
        self.sink = sink
        self.spill = spill
        self.flush_seconds = flush_seconds
        self.shadow_predict = shadow_predict
        self._outage: LogOutage | None = None
        self._held: list[Prediction] = []
        self._queue: queue.SimpleQueue[Prediction | ShadowJob | None] = queue.SimpleQueue()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def log(self, entry: Prediction | ShadowJob) -> None:
        self._queue.put(entry)

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued (or spill it), then stop."""
        if self._thread.is_alive():
            self._queue.put(None)  # before the wake: the writer drains up to it, then stops
            self._closing.set()
            self._thread.join(timeout)

    def outage(self) -> LogOutage | None:
        """None while the log takes this worker's rows; else since when it refuses them."""
        return self._outage

    def _run(self) -> None:
        pending: list[Prediction] = []
        deadline = time.monotonic() + self.flush_seconds
        while True:
            # Woken by the clock (or by `close`), never by a request: a thread blocked on the
            # queue wakes at every `put`, and takes the GIL from the event loop to append one
            # row (two thread switches per request on a worker's one core).
            self._closing.wait(min(DRAIN_SECONDS, max(0.0, deadline - time.monotonic())))
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._write(pending)
                    if self._held:
                        _say(
                            f"{len(self._held)} rows LOST at shutdown: the log and the spill "
                            "folder refuse them"
                        )
                    self.sink.close()
                    return
                if isinstance(item, Prediction):
                    pending.append(item)
                else:
                    pending.append(item.live)
                    pending.extend(self._shadow(item))
                if time.monotonic() >= deadline:  # a queue never empty still flushes on time
                    break
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
        """Write `entries` (after any held rows); then, the log taking rows, replay what
        waits in the spill folder. Never raises: a log outage must not stop the endpoint."""
        entries = self._held + entries
        if entries:
            try:
                self.sink.write(entries)
            except Exception as exc:
                self._refused(entries, exc)
                return
        self._held = []
        if self.spill is None or (self._outage is None and not self.spill.has_files()):
            return
        try:
            replayed = self.spill.replay(self.sink)
        except Exception as exc:
            self._outage = replace(self._outage or self._began(exc), error=_text(exc))
            return
        if self._outage is not None:
            _say(f"writable again; {replayed} spilled rows replayed into it")
        self._outage = None

    def _refused(self, entries: list[Prediction], exc: Exception) -> None:
        outage = replace(self._outage or self._began(exc), error=_text(exc))
        try:
            if self.spill is None:
                raise OSError("no spill folder")
            self.spill.write(entries)
        except Exception as again:
            kept = entries[-MAX_HELD:]
            if not outage.held:
                _say(f"the spill folder refuses rows too ({_text(again)}); holding them")
            self._held = kept
            dropped = len(entries) - len(kept)
            self._outage = replace(outage, held=len(kept), lost=outage.lost + dropped)
            return
        self._held = []
        self._outage = replace(outage, spilled=outage.spilled + len(entries), held=0)

    def _began(self, exc: Exception) -> LogOutage:
        where = str(self.spill.folder) if self.spill is not None else ""
        outage = LogOutage(since=time.time(), error=_text(exc), spill_dir=where)
        _say(f"OUTAGE: the log refuses rows ({_text(exc)}); spilling them to {where or '-'}")
        return outage


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
            with (
                atomic_path(folder / name) as partial,
                pq.ParquetWriter(partial, schema()) as writer,
            ):
                for first in range(0, len(rows), _CHUNK):
                    writer.write_batch(batch(rows[first : first + _CHUNK]))
                    time.sleep(0)  # let the request thread in between chunks


#: Rows converted per step: converting Python values holds the GIL, and the worker's event
#: loop waits for it; small steps keep that wait (and the tail latency) short.
_CHUNK = 128


def _say(line: str) -> None:
    """To the server log (the worker's output)."""
    print(f"mlstack prediction log: {line}", flush=True)


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def batch(rows: list[Prediction]) -> Any:
    """`rows` as one record batch of the log's schema."""
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
            pa.array([r.traffic for r in rows], pa.string()),
        ],
        schema=schema(),
    )


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def read_log(
    directory: Path, *, since: datetime | None = None, until: datetime | None = None
) -> Any:
    """The log as a pyarrow Table (rows in [since, until)); empty when nothing was logged.
    Rows of files written before requests were tagged read as `traffic` live."""
    import pyarrow.compute as pc

    dataset, condition = _dataset(directory, since, until)
    if dataset is None:
        return schema().empty_table()
    table = dataset.to_table(filter=condition).sort_by("ts")
    index = table.schema.get_field_index("traffic")
    return table.set_column(index, "traffic", pc.fill_null(table["traffic"], "live"))


#: The columns monitoring reads from a streamed log (`scan_log`).
SCANNED = ("request_id", "ts", "model_version", "role", "status", "inputs", "output", "traffic")


def scan_log(
    directory: Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    batch_rows: int = 65_536,
) -> Iterator[Any]:
    """The log's rows in [since, until) as pyarrow RecordBatches of at most `batch_rows`
    rows (the `SCANNED` columns, file by file, not sorted; `traffic` null in older files):
    a window of any size read in the memory of one batch."""
    dataset, condition = _dataset(directory, since, until)
    if dataset is None:
        return
    for batch in dataset.to_batches(
        columns=list(SCANNED),
        filter=condition,
        batch_size=batch_rows,
        batch_readahead=2,
        fragment_readahead=1,
    ):
        yield from _split(batch, batch_rows)


def answered_ids(
    directory: Path, request_ids: Iterable[str], roles: Iterable[str], *, batch_rows: int = 65_536
) -> set[str]:
    """Those of `request_ids` logged under `directory` with one of `roles` and status 200
    (`stack.monitoring.stream.ids_among`: a scan of three columns, filtered by the ids)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    from stack.monitoring.stream import ids_among

    dataset, _ = _dataset(directory, None, None)
    answered = ds.field("role").isin(pa.array(sorted(roles), pa.string())) & (
        ds.field("status") == 200
    )
    return ids_among(dataset, request_ids, answered, batch_rows=batch_rows)


def _split(batch: Any, size: int) -> Iterator[Any]:
    """pyarrow's `batch_size` is a maximum it may exceed across row groups: enforce it."""
    for start in range(0, batch.num_rows, size):
        yield batch.slice(start, size)


def _dataset(directory: Path, since: datetime | None, until: datetime | None) -> tuple[Any, Any]:
    """The log's files as one dataset (None without any) and the filter of the period."""
    import pyarrow.dataset as ds

    from stack.monitoring.stream import period

    files = sorted(str(p) for p in directory.glob("date=*/hour=*/*.parquet"))
    if not files:
        return None, None
    return ds.dataset(files, format="parquet", schema=schema()), period(since, until)
