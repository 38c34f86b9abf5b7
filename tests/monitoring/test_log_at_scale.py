"""A label file's request ids are looked up in the log by id, never by reading the log whole,
and a PostgreSQL (or batch) window is streamed like the Parquet one: on each of the three
logs (the endpoint's Parquet files, its PostgreSQL table, batch scoring's files), written by
their own writers, an id answered live or by a fallback counts as answered, one that only a
shadow answered or that failed does not; the PostgreSQL stream gives the window the Parquet
stream and the whole read give; a large PostgreSQL window is read in bounded memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stack.monitoring.batch import BatchPredictionLog
from stack.monitoring.stream import StreamedWindow, stream_window
from stack.monitoring.window import VersionWindow, split_by_version
from stack_bentoml.config import BentoConfig, PredictionLogConfig
from stack_bentoml.logread import answered_among, log_batches, log_rows, logged_request
from stack_bentoml.postgres_log import PostgresSink
from stack_bentoml.postgres_log import answered_among as answered_in_table
from stack_bentoml.predictlog import ParquetSink, Prediction
from tests.support.postgres import PostgresServer

START = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
UNTIL = START + timedelta(hours=1)
ASKED = {"live-ok", "fallback-ok", "shadow-only", "failed", "feedback-only", "never", "other"}


def answers() -> list[Prediction]:
    """One request of each kind a label may name; `other` was answered on another endpoint."""

    def row(request_id: str, role: str, status: int = 200, endpoint: str = "churn") -> Prediction:
        return Prediction(
            request_id=request_id,
            ts=START.timestamp() + 1,
            endpoint=endpoint,
            model_version="churn@1",
            role=role,
            status=status,
            latency_ms=2.0,
            inputs=json.dumps([{"x": 1.0}]),
            output=None if status != 200 else [1],
        )

    return [
        row("live-ok", "live"),
        row("fallback-ok", "fallback"),
        row("shadow-only", "shadow"),
        row("failed", "live", 500),
        row("feedback-only", "feedback"),
        row("other", "live", endpoint="upsell"),
    ]


def window_rows(count: int, *, features: int = 4) -> list[Prediction]:
    """`count` answered requests over the window: two versions, a shadow copy of every
    tenth, a failure every seventh, `bake` traffic every fifth; `features` floats each (at
    most 230,000: 64 a second within the hour)."""
    rows = []
    for i in range(count):
        record = {f"f{k}": float((i * (k + 3)) % 17) for k in range(features)}
        tagged = "bake" if i % 5 == 0 else "live"
        at = START.timestamp() + i / 64  # exact in binary: both writers keep the same µs
        failed = i % 7 == 0
        rows.append(
            Prediction(
                request_id=f"r{i}",
                ts=at,
                endpoint="churn",
                model_version=("churn@1", "churn@2")[i % 2],
                role="live",
                status=500 if failed else 200,
                latency_ms=3.0,
                inputs=json.dumps([record]),
                output=None if failed else [i % 2],
                traffic=tagged,
            )
        )
        if i % 10 == 0:
            rows.append(
                Prediction(
                    f"r{i}", at, "churn", "churn@3", "shadow", 200, 3.0, rows[-1].inputs, [0]
                )
            )
    return rows


def parquet_config(home: Path, rows: list[Prediction]) -> BentoConfig:
    by_endpoint: dict[str, list[Prediction]] = {}
    for r in rows:
        by_endpoint.setdefault(r.endpoint, []).append(r)
    for endpoint, entries in by_endpoint.items():
        ParquetSink(home / endpoint).write(entries)
    return BentoConfig()


def postgres_config(url: str, rows: list[Prediction]) -> BentoConfig:
    sink = PostgresSink(url)
    try:
        for first in range(0, len(rows), 50_000):
            sink.write(rows[first : first + 50_000])
    finally:
        sink.close()
    return BentoConfig(prediction_log=PredictionLogConfig(url=url))


@pytest.fixture
def database(postgres_server: PostgresServer) -> Iterator[str]:
    with postgres_server.database() as url:
        yield url


def test_parquet_log_answers_for_live_and_fallback_ids_only(tmp_path: Path) -> None:
    config = parquet_config(tmp_path, answers())
    assert answered_among(config, tmp_path, "churn", ASKED) == {"live-ok", "fallback-ok"}
    assert answered_among(config, tmp_path, "churn", set()) == set()
    assert answered_among(config, tmp_path, "never-logged", ASKED) == set()


@pytest.mark.postgres
def test_postgres_log_answers_for_live_and_fallback_ids_only(database: str) -> None:
    config = postgres_config(database, answers())
    assert answered_among(config, Path("unused"), "churn", ASKED) == {"live-ok", "fallback-ok"}
    # asked in chunks: the same answer whatever the chunk size
    assert answered_in_table(database, "churn", ASKED, {"live", "fallback"}, chunk=2) == {
        "live-ok",
        "fallback-ok",
    }
    assert answered_among(config, Path("unused"), "churn", set()) == set()


@pytest.mark.postgres
def test_a_postgres_log_no_worker_created_yet_answers_for_no_id(database: str) -> None:
    config = BentoConfig(prediction_log=PredictionLogConfig(url=database))
    assert answered_among(config, Path("unused"), "churn", ASKED) == set()
    assert list(log_batches(config, Path("unused"), "churn", START)) == []


def test_batch_log_answers_for_every_scored_record(tmp_path: Path) -> None:
    log = BatchPredictionLog(tmp_path)
    log.record(
        "nightly",
        version="churn@1",
        ids=["a", "b"],
        records=[{"x": 1}] * 2,
        predictions=[0, 1],
        at=START,
    )
    log.record(
        "nightly", version="churn@1", ids=["c"], records=[{"x": 2}], predictions=[1], at=UNTIL
    )
    assert log.answered_among("nightly", {"a", "c", "z"}) == {"a", "c"}
    assert log.answered_among("weekly", {"a"}) == set()


def test_a_streamed_batch_window_is_the_loaded_one(tmp_path: Path) -> None:
    log = BatchPredictionLog(tmp_path)
    records = [{"x": float(i), "plan": ["basic", "pro"][i % 2]} for i in range(30)]
    log.record(
        "nightly",
        version="churn@1",
        ids=[f"b{i}" for i in range(30)],
        records=records,
        predictions=[[0.2, 0.8]] * 15 + [[0.5]] * 15,
        at=START,
    )
    log.record(
        "nightly", version="churn@2", ids=["late"], records=records[:1], predictions=[1], at=UNTIL
    )  # after the window

    streamed = stream_window(log.log_batches("nightly", since=START, batch_rows=7), UNTIL)
    whole = split_by_version(log.logged("nightly", since=START), UNTIL)

    assert_same_windows(streamed, whole)
    assert streamed.largest_batch <= 7


def assert_same_windows(streamed: StreamedWindow, whole: Mapping[str, VersionWindow]) -> None:
    assert sorted(streamed.windows) == sorted(whole)
    for version, window in whole.items():
        ours = streamed.windows[version]
        assert ours.sampled_rows is None
        assert ours.rows == window.rows
        assert ours.records == window.records
        assert ours.predictions == window.predictions
        assert ours.keys == window.keys
        assert ours.times == window.times


@pytest.mark.postgres
def test_a_streamed_postgres_window_is_the_parquet_one_and_the_whole_read(
    tmp_path: Path, database: str
) -> None:
    rows = window_rows(1500)
    on_parquet = parquet_config(tmp_path, rows)
    on_postgres = postgres_config(database, rows)

    from_postgres = stream_window(
        log_batches(on_postgres, tmp_path, "churn", START, batch_rows=100), UNTIL
    )
    from_parquet = stream_window(log_batches(on_parquet, tmp_path, "churn", START), UNTIL)
    whole = [logged_request(r) for r in log_rows(on_postgres, tmp_path, "churn", START)]

    assert from_postgres.largest_batch <= 100
    assert_same_windows(from_postgres, split_by_version(whole, UNTIL))
    assert_same_windows(from_parquet, from_postgres.windows)
    answered = [r for r in rows if r.role == "live" and r.status == 200]
    bake = sum(1 for r in answered if r.traffic == "bake")
    assert from_postgres.left_out == from_parquet.left_out == {"bake": bake}
    counted = sum(w.total_rows or 0 for w in from_postgres.windows.values())
    assert counted == len(answered) - bake


MEASURE = """
import sys
from datetime import datetime, UTC
from pathlib import Path
from stack.monitoring.stream import stream_window
from stack_bentoml.config import BentoConfig, PredictionLogConfig
from stack_bentoml.logread import log_batches, log_rows

config = BentoConfig(prediction_log=PredictionLogConfig(url=sys.argv[2]))
since, until = datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
if sys.argv[1] == "streamed":
    window = stream_window(log_batches(config, Path("-"), "churn", since), until, sample_rows=500)
    seen = sum(w.total_rows for w in window.windows.values())
else:
    seen = len(log_rows(config, Path("-"), "churn", since))
# the peak of this process's own memory: getrusage's ru_maxrss would count the forked
# parent's (Linux keeps it across execve), VmHWM starts afresh with the new program
status = Path("/proc/self/status").read_text()
peak = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
print(seen, peak)
"""


def peak_rss_kib(mode: str, url: str) -> tuple[int, int]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(MEASURE), mode, url],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    seen, peak = done.stdout.split()
    return int(seen), int(peak)


@pytest.mark.postgres
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's VmHWM")
def test_a_large_postgres_window_is_streamed_in_bounded_memory(database: str) -> None:
    """200,000 requests of 20 features: the streamed read holds a page and the sample (its
    peak is the interpreter's and its libraries' plus tens of MB), the whole read every row."""
    postgres_config(database, window_rows(200_000, features=20))

    seen, streamed = peak_rss_kib("streamed", database)
    rows, whole = peak_rss_kib("whole", database)

    assert rows > 200_000 and seen > 0
    assert whole - streamed > 150 * 1024, (streamed, whole)
