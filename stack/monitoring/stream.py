"""A window of an endpoint's log read as a stream: record batches of the log, never the
whole window, so `monitor run` over 10,000,000 requests holds what one batch and a bounded
sample hold.

Each batch is filtered (the period, answered with 200, the kept traffic kinds) with pyarrow
compute; every answered request is counted exactly, per version; and a uniform sample of at
most `sample_rows` requests per version is kept (bottom-k of a seeded random key: a reservoir
that is the same for the same log). Only the sampled requests' JSON is decoded. The sample is
what drift, data quality and performance are judged on, by the monitor's own (Evidently's)
tests: the verdicts are Evidently's on that sample, and a window that fits the sample is
judged whole, exactly as the loaded path judges it (`split_by_version`). The result says
when a check was judged on a sample, and of how many rows.

Labels join the sampled records as they join a loaded window (`join_labels`); the counts of
labels matched are exact for labels that name a request id (matched against the id of every
request in the window, kept as Arrow strings), and from the sample for labels that name an
entity."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from stack.contract.serving import LoggedRequest
from stack.monitoring.window import ANSWERED, LIVE_TRAFFIC, VersionWindow

#: Requests read per record batch (the batch-size contract of `PredictionLogScanner`).
BATCH_ROWS = 65_536
#: Requests kept per version for the tests: the bound on what a streamed check holds.
SAMPLE_ROWS = 100_000
SEED = 20_251_130


@runtime_checkable
class PredictionLogScanner(Protocol):
    """Optional, beside `PredictionLogReader`: the endpoint's log in [`since`, `until`) as
    pyarrow record batches of at most `batch_rows` rows each, in the columns of the
    endpoint's Parquet log (`request_id`, `ts`, `model_version`, `role`, `status`,
    `inputs`, `output`, `traffic`; `inputs`/`output` as JSON text)."""

    def log_batches(
        self,
        endpoint: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        batch_rows: int = BATCH_ROWS,
    ) -> Iterator[Any]: ...


@dataclass
class StreamedWindow:
    """What a streamed read leaves: per version, the sampled window (its `total_rows` the
    exact count of requests answered; `rows` the records, estimated from the sample when
    sampled), the `/feedback` labels, the answered requests of traffic kinds left out
    (kind -> count), and the ids of the requests answered in the window, as Arrow arrays
    (about 14 bytes a request), to count label matches exactly (`answered`)."""

    windows: dict[str, VersionWindow] = field(default_factory=dict)
    feedback: list[LoggedRequest] = field(default_factory=list)
    left_out: dict[str, int] = field(default_factory=dict)
    largest_batch: int = 0
    answered_ids: list[Any] = field(default_factory=list)

    def answered(self, ids: Collection[str]) -> set[str]:
        """Those of `ids` that name a request answered in the window."""
        import pyarrow as pa
        import pyarrow.compute as pc

        wanted = pa.array(sorted(set(ids)), pa.string())
        if not len(wanted):
            return set()
        hit = pa.array([False] * len(wanted))
        for chunk in self.answered_ids:
            hit = pc.or_(hit, pc.is_in(wanted, value_set=chunk))
        return set(wanted.filter(hit).to_pylist())


def period(since: datetime | None, until: datetime | None) -> Any:
    """A pyarrow dataset filter keeping `ts` in [`since`, `until`); None when both are None."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    when = pa.timestamp("us", tz="UTC")
    condition = None
    if since is not None:
        condition = ds.field("ts") >= pa.scalar(since, when)
    if until is not None:
        before = ds.field("ts") < pa.scalar(until, when)
        condition = before if condition is None else condition & before
    return condition


def stream_window(
    batches: Iterable[Any],
    until: datetime,
    traffic: Collection[str] = LIVE_TRAFFIC,
    *,
    sample_rows: int = SAMPLE_ROWS,
    seed: int = SEED,
) -> StreamedWindow:
    """Read the log's batches once: count, sample per version, keep feedback rows. Memory:
    one batch, up to twice `sample_rows` requests per version (their JSON), and the ids of
    the requests answered."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if sample_rows < 1:
        raise ValueError(f"sample_rows must be at least 1, got {sample_rows}")
    rng = np.random.default_rng(seed)
    kept: dict[str, _Reservoir] = {}
    out = StreamedWindow()
    answered_roles = pa.array(sorted(ANSWERED), pa.string())
    kept_kinds = pa.array(sorted(traffic), pa.string())
    when = pa.scalar(until, pa.timestamp("us", tz="UTC"))
    for batch in batches:
        out.largest_batch = max(out.largest_batch, batch.num_rows)
        if not batch.num_rows:
            continue
        role = batch.column("role")
        heard = pc.equal(role, "feedback")  # late labels: any time, even after `until`
        if pc.any(heard).as_py():
            out.feedback += [logged_row(row) for row in batch.filter(heard).to_pylist()]
        answered = pc.and_(
            pc.and_(pc.is_in(role, answered_roles), pc.less(batch.column("ts"), when)),
            pc.equal(batch.column("status"), 200),
        )
        kinds = pc.fill_null(batch.column("traffic"), "live")
        mine = pc.is_in(kinds, kept_kinds)
        others = pc.and_(answered, pc.invert(mine))
        if pc.any(others).as_py():
            for kind, count in _counts(kinds.filter(others)).items():
                out.left_out[kind] = out.left_out.get(kind, 0) + count
        chosen = pc.and_(answered, mine)
        if not pc.any(chosen).as_py():
            continue
        out.answered_ids.append(batch.column("request_id").filter(chosen))
        keys = rng.random(batch.num_rows)  # only rows a reservoir takes are copied
        versions = batch.column("model_version")
        for version in pc.unique(versions.filter(chosen)).to_pylist():
            mask = pc.and_(chosen, pc.equal(versions, version)).to_numpy(zero_copy_only=False)
            kept.setdefault(str(version), _Reservoir(sample_rows)).offer(batch, keys, mask)
    for version, reservoir in kept.items():
        out.windows[version] = reservoir.window(version)
    return out


class _Reservoir:
    """The `size` requests with the smallest random keys seen so far (a uniform sample
    without replacement); `seen` counts every request offered. Candidates are gathered and
    cut back to `size` when they reach twice that, so memory stays within 2 x `size` rows
    and a batch whose keys cannot enter (all above the kept k-th smallest) costs a compare."""

    COLUMNS = ("request_id", "ts", "model_version", "role", "status", "inputs", "output")

    def __init__(self, size: int) -> None:
        self.size = size
        self.seen = 0
        self.tables: list[Any] = []
        self.keys: list[Any] = []
        self.held = 0
        self.threshold = float("inf")

    def offer(self, batch: Any, keys: Any, mask: Any) -> None:
        """Offer the rows of `batch` where `mask` is true, with their random `keys`."""
        import pyarrow as pa

        self.seen += int(mask.sum())
        low = mask & (keys < self.threshold)
        if not low.any():
            return
        table = pa.Table.from_batches([batch.select(list(self.COLUMNS))])
        self.tables.append(table.filter(pa.array(low)))
        self.keys.append(keys[low])
        self.held += int(low.sum())
        if self.held >= 2 * self.size:
            self._compact()

    def _compact(self) -> None:
        import numpy as np
        import pyarrow as pa

        table = pa.concat_tables(self.tables)
        keys = np.concatenate(self.keys)
        if keys.size > self.size:
            order = np.sort(np.argpartition(keys, self.size - 1)[: self.size])
            table, keys = table.take(pa.array(order)), keys[order]
            self.threshold = float(keys.max())
        self.tables, self.keys, self.held = [table.combine_chunks()], [keys], keys.size

    def window(self, version: str) -> VersionWindow:
        import pyarrow.compute as pc

        self._compact()
        table = self.tables[0]
        ordered = table.take(pc.sort_indices(table, [("ts", "ascending")]))
        window = VersionWindow(version)
        columns = ("request_id", "ts", "inputs", "output")
        ids, times, inputs, outputs = (ordered[name].to_pylist() for name in columns)
        for request_id, at, text, answer in zip(ids, times, inputs, outputs, strict=True):
            records, answers = _records(text, answer)
            moment = at if at.tzinfo else at.replace(tzinfo=UTC)
            for index, (record, output) in enumerate(zip(records, answers, strict=False)):
                window.records.append(dict(record))
                window.predictions.append(output)
                window.labels.append(None)
                window.keys.append((str(request_id), index))
                window.times.append(moment)
        window.total_rows = self.seen
        if self.seen > ordered.num_rows and ordered.num_rows:
            window.sampled_rows = len(window.records)
            window.estimated_rows = round(len(window.records) * self.seen / ordered.num_rows)
        return window


def _counts(values: Any) -> dict[str, int]:
    import pyarrow.compute as pc

    return {
        str(item["values"]): int(item["counts"]) for item in pc.value_counts(values).to_pylist()
    }


def ids_among(
    dataset: Any, request_ids: Iterable[str], where: Any = None, *, batch_rows: int = BATCH_ROWS
) -> set[str]:
    """Those of `request_ids` in the pyarrow `dataset` (a log with a `request_id` column),
    among its rows that also meet the expression `where`: a scan of the `request_id` column
    alone, filtered by the ids in record batches (memory: the ids asked about and a batch)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    wanted = pa.array(sorted(set(request_ids)), pa.string())
    if dataset is None or not len(wanted):
        return set()
    condition = ds.field("request_id").isin(wanted)
    if where is not None:
        condition = condition & where
    found: set[str] = set()
    for batch in dataset.to_batches(
        columns=["request_id"], filter=condition, batch_size=batch_rows, fragment_readahead=1
    ):
        found.update(batch.column(0).to_pylist())
    return found


def logged_row(row: dict[str, Any]) -> LoggedRequest:
    """One row of the endpoint's log (its Parquet or PostgreSQL columns) as a request: its
    inputs and outputs one per record; a failed request, or a model answering the whole
    request with one value, has that one output for every record."""
    records, outputs = _records(row.get("inputs"), row.get("output"))
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
        latency_ms=None if row.get("latency_ms") is None else float(row["latency_ms"]),
    )


def _records(inputs: str | None, output: str | None) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """A logged request's records and their outputs, decoded from the log's JSON text."""
    decoded = json.loads(inputs) if inputs else []
    answer = json.loads(output) if output is not None else None
    records = tuple(decoded) if isinstance(decoded, list) else (decoded,)
    if isinstance(answer, list) and len(answer) == len(records):
        return records, tuple(answer)
    return records, (answer,) * len(records)
