"""`monitor run` streams the endpoint's Parquet log: batches no larger than asked, a bounded
uniform sample per version, every request counted; a window that fits the sample is the
loaded window itself, and on a larger one the verdicts are Evidently's own on the sample."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from stack.contract.monitoring import ColumnPolicy
from stack.monitoring.stream import stream_window
from stack.monitoring.window import split_by_version
from stack.plugins.manifest import AdapterContext
from stack_bentoml.logread import logged_request
from stack_bentoml.predictlog import read_log, scan_log, schema
from stack_evidently.monitor import EvidentlyMonitor
from tests.adapters.evidently.test_drift_agrees import evidently_verdicts

START = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
UNTIL = START + timedelta(hours=1)


def write_log(
    folder: Path,
    records: Sequence[dict[str, Any]],
    *,
    versions: Sequence[str] = ("churn@1",),
    traffic: Sequence[str | None] = ("live",),
    per_file: int = 1000,
) -> Path:
    """`records` logged as one request each, in the endpoint's layout (date=/hour= folders,
    its schema), versions and traffic tags taken in turn; one file per `per_file` rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        {
            "request_id": f"r{i}",
            "ts": START + timedelta(milliseconds=i),
            "endpoint": "churn",
            "model_version": versions[i % len(versions)],
            "role": "live",
            "status": 200,
            "latency_ms": 1.0,
            "inputs": json.dumps([record]),
            "output": json.dumps([i % 2]),
            "error": None,
            "live_output": None,
            "traffic": traffic[i % len(traffic)],
        }
        for i, record in enumerate(records)
    ]
    hour = folder / "churn" / "date=2026-11-30" / "hour=10"
    hour.mkdir(parents=True, exist_ok=True)
    for n, start in enumerate(range(0, len(rows), per_file)):
        table = pa.Table.from_pylist(rows[start : start + per_file], schema())
        pq.write_table(table, hour / f"part-{n}.parquet", row_group_size=300)
    return folder / "churn"


def loaded(log: Path) -> list[Any]:
    return [logged_request(row) for row in read_log(log).to_pylist()]


def test_the_log_is_read_in_batches_no_larger_than_asked_and_the_sample_is_bounded(
    tmp_path: Path,
) -> None:
    log = write_log(tmp_path, [{"x": float(i)} for i in range(2500)], versions=("m@1", "m@2"))
    batches = list(scan_log(log, batch_rows=256))
    assert max(b.num_rows for b in batches) <= 256
    assert sum(b.num_rows for b in batches) == 2500

    streamed = stream_window(scan_log(log, batch_rows=256), UNTIL, sample_rows=100)

    assert streamed.largest_batch <= 256
    assert sorted(streamed.windows) == ["m@1", "m@2"]
    for window in streamed.windows.values():
        assert len(window.records) == window.sampled_rows == 100
        assert window.total_rows == 1250  # every request counted, not only the sample
        assert window.rows == 1250
        assert len(set(window.keys)) == 100
        assert window.times == sorted(window.times)
    # labels are matched against every request answered, not only the sampled ones
    assert streamed.answered({"r0", "r1337", "r2499", "r2500"}) == {"r0", "r1337", "r2499"}


def test_the_sample_is_uniform_over_the_window(tmp_path: Path) -> None:
    log = write_log(tmp_path, [{"x": float(i)} for i in range(6000)], per_file=500)
    streamed = stream_window(scan_log(log, batch_rows=512), UNTIL, sample_rows=600)
    values = np.array([r["x"] for r in streamed.windows["churn@1"].records])
    # every sixth of the log is in the sample about as often as the others (not the first
    # or the last batches): 100 expected per sixth, 60 to 140 allows for chance
    counts = np.histogram(values, bins=6, range=(0, 6000))[0]
    assert counts.min() > 60 and counts.max() < 140, counts


def test_a_window_that_fits_the_sample_is_the_loaded_window(tmp_path: Path) -> None:
    records = [{"x": i % 7, "plan": ["basic", "pro"][i % 2], "age": None} for i in range(900)]
    log = write_log(
        tmp_path, records, versions=("m@1", "m@2"), traffic=("live", "bake", None, "test")
    )
    streamed = stream_window(scan_log(log, batch_rows=128), UNTIL, sample_rows=1000)
    whole = split_by_version(loaded(log), UNTIL)

    assert sorted(streamed.windows) == sorted(whole)
    for version, window in whole.items():
        ours = streamed.windows[version]
        assert ours.sampled_rows is None and ours.rows == window.rows
        assert ours.records == window.records
        assert ours.predictions == window.predictions
        assert ours.keys == window.keys
        assert ours.times == window.times
    assert streamed.left_out == {"bake": 225, "test": 225}


def test_an_empty_window_streams_to_no_versions(tmp_path: Path) -> None:
    assert stream_window(iter(()), UNTIL).windows == {}
    log = write_log(tmp_path, [{"x": 1.0}] * 10, traffic=("bake",))
    streamed = stream_window(scan_log(log), UNTIL)
    assert streamed.windows == {} and streamed.left_out == {"bake": 10}
    later = stream_window(scan_log(log, since=UNTIL), UNTIL + timedelta(hours=1))
    assert later.windows == {} and later.left_out == {}


def shapes(seed: int, rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A reference with narrow and nullable dtypes, tied values and a category; the window
    drifted in two columns and steady in the others."""
    rng = np.random.default_rng(seed)

    def frame(shift: float, size: int) -> pd.DataFrame:
        nullable = pd.array(rng.integers(0, 50, size=size), dtype="Int64")
        nullable[rng.random(size) < 0.2] = pd.NA
        return pd.DataFrame(
            {
                "steady": rng.normal(size=size).astype("float32"),
                "shifted": rng.normal(shift, size=size),
                "tiny": rng.integers(0, 4, size=size).astype("int8"),  # ties: four values
                "rounded": np.round(rng.normal(size=size), 1),  # ties among many values
                "visits": nullable,
                "plan": rng.choice(
                    ["basic", "plus", "pro"], size, p=[0.6, 0.3, 0.1] if shift else [0.2, 0.3, 0.5]
                ),
            }
        )

    return frame(0.0, rows), frame(1.0, rows * 3)


@pytest.mark.parametrize(("seed", "rows", "sample"), [(1, 3000, 2000), (2, 600, 500)])
def test_streamed_verdicts_are_evidentlys_on_the_sample(
    seed: int, rows: int, sample: int, tmp_path: Path
) -> None:
    reference, current = shapes(seed, rows)
    records = json.loads(current.to_json(orient="records"))  # nulls as the endpoint logs them
    log = write_log(tmp_path, records)
    window = stream_window(scan_log(log, batch_rows=700), UNTIL, sample_rows=sample)
    held = window.windows["churn@1"]
    assert held.sampled_rows == sample and held.total_rows == len(current)
    names = list(reference.columns)
    sampled = held.columns(names)

    ours = EvidentlyMonitor(None, AdapterContext(tmp_path, tmp_path)).drift(
        reference, sampled, columns=[ColumnPolicy(n) for n in names]
    )
    expected = evidently_verdicts(reference, pd.DataFrame(sampled))

    verdicts = {c.column: c.drifted for c in ours.columns}
    assert verdicts == {name: drifted for name, (_, drifted) in expected.items()}
    # the sample tells the drifted columns from the steady ones as the whole window does
    assert verdicts["shifted"] and verdicts["plan"]
    assert not verdicts["steady"] and not verdicts["tiny"]
