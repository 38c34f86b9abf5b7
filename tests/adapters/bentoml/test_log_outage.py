"""The prediction log loses nothing it can keep: rows the log refuses wait in the spill
folder and are replayed into it once it takes rows again; the outage is said while it lasts.

An unwritable log, also for root (the suite may run as root, who ignores file modes): the
log's folder is placed under a regular file, so creating it fails with NotADirectoryError
whoever the process is — a real refusal by the file system, with no privileges needed to
set up or undo (a read-only mount would need them)."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stack_bentoml.health import version_health
from stack_bentoml.predictlog import ParquetSink, Prediction, PredictionLogWriter, read_log
from stack_bentoml.spill import SpillFolder, waiting
from stack_bentoml.traffic import traffic_of


def rows(prefix: str, count: int, traffic: str = "live") -> list[Prediction]:
    now = time.time()
    return [
        Prediction(
            f"{prefix}{i}", now, "e", "m@1", "live", 200, 1.0, "[{}]", [i], None, None, traffic
        )
        for i in range(count)
    ]


def blocked(tmp_path: Path) -> tuple[Path, Path]:
    """A log folder that cannot be created (its parent is a file), and that parent."""
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    return blocker / "log", blocker


def logged_ids(folder: Path) -> list[str]:
    return sorted(read_log(folder).column("request_id").to_pylist())


def until(condition: object, what: str) -> None:
    """Wait for the writer's thread (which flushes every 20 ms here) to get there."""
    deadline = time.monotonic() + 30
    while not callable(condition) or not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.02)


def test_rows_an_unwritable_log_refuses_are_spilled_and_replayed_by_the_next_worker(
    tmp_path: Path,
) -> None:
    log_dir, blocker = blocked(tmp_path)
    spill = SpillFolder(tmp_path / "spill")
    first = PredictionLogWriter(ParquetSink(log_dir), flush_seconds=60, spill=spill)
    for entry in rows("a", 40, traffic="bake"):
        first.log(entry)
    first.close()  # what SIGTERM does: the last flush fails, so it spills
    outage = first.outage()
    assert outage is not None and outage.spilled == 40
    assert "NotADirectoryError" in outage.sentence()
    assert str(tmp_path / "spill") in outage.sentence()
    assert waiting(tmp_path / "spill").rows == 40
    assert not log_dir.exists()

    blocker.unlink()  # the log is writable again
    second = PredictionLogWriter(ParquetSink(log_dir), flush_seconds=60, spill=spill)
    for entry in rows("b", 5):
        second.log(entry)
    second.close()
    assert second.outage() is None
    assert logged_ids(log_dir) == sorted([f"a{i}" for i in range(40)] + [f"b{i}" for i in range(5)])
    replayed = read_log(log_dir).to_pylist()
    assert {r["traffic"] for r in replayed if r["request_id"].startswith("a")} == {"bake"}
    assert waiting(tmp_path / "spill").files == 0


def busy_writer(log_dir: Path, spill: Path) -> PredictionLogWriter:
    """A writer flushing every 20 ms, handed 10 rows (a0…a9)."""
    writer = PredictionLogWriter(ParquetSink(log_dir), flush_seconds=0.02, spill=SpillFolder(spill))
    for entry in rows("a", 10):
        writer.log(entry)
    return writer


def test_one_worker_recovers_by_itself_and_says_so_while_it_lasts(tmp_path: Path) -> None:
    log_dir, blocker = blocked(tmp_path)
    writer = busy_writer(log_dir, tmp_path / "spill")
    until(lambda: (o := writer.outage()) is not None and o.spilled == 10, "10 rows spilled")
    blocker.unlink()
    until(lambda: writer.outage() is None, "the outage ends with the next flush")
    writer.close()
    assert logged_ids(log_dir) == sorted(f"a{i}" for i in range(10))
    assert waiting(tmp_path / "spill").files == 0


def test_rows_are_held_in_memory_while_the_spill_folder_refuses_them_too(tmp_path: Path) -> None:
    log_dir, blocker = blocked(tmp_path)
    writer = busy_writer(log_dir, blocker / "spill")
    until(lambda: (o := writer.outage()) is not None and o.held == 10, "10 rows held")
    outage = writer.outage()
    assert outage is not None and outage.lost == 0 and "held in memory" in outage.sentence()
    blocker.unlink()
    until(lambda: writer.outage() is None, "the held rows written")
    writer.close()
    assert logged_ids(log_dir) == sorted(f"a{i}" for i in range(10))


def test_a_spill_file_claimed_by_a_worker_that_died_is_taken_over(tmp_path: Path) -> None:
    spill = SpillFolder(tmp_path / "spill")
    spill.write(rows("a", 3))
    (name,) = [p for p in (tmp_path / "spill").iterdir()]
    gone = 2**22 + 1  # above the largest pid Linux allows: no process has it
    name.rename(name.with_name(f"{name.name}.claimed-{gone}"))
    log_dir = tmp_path / "log"
    assert spill.replay(ParquetSink(log_dir)) == 3
    assert logged_ids(log_dir) == ["a0", "a1", "a2"]


def test_files_logged_before_requests_were_tagged_read_as_live(tmp_path: Path) -> None:
    folder = tmp_path / "log" / "date=2026-11-01" / "hour=00"
    folder.mkdir(parents=True)
    old = pa.table(
        {
            "request_id": ["old"],
            "ts": pa.array([1_790_000_000_000_000], pa.timestamp("us", tz="UTC")),
            "endpoint": ["e"],
            "model_version": ["m@1"],
            "role": ["live"],
            "status": pa.array([200], pa.int16()),
            "latency_ms": [1.0],
            "inputs": ["[{}]"],
            "output": ["[0]"],
            "error": pa.array([None], pa.string()),
            "live_output": pa.array([None], pa.string()),
        }
    )
    pq.write_table(old, folder / "1-1-1.parquet")
    ParquetSink(tmp_path / "log").write(rows("new", 1, traffic="test"))
    by_id = {r["request_id"]: r["traffic"] for r in read_log(tmp_path / "log").to_pylist()}
    assert by_id == {"old": "live", "new0": "test"}


def test_rollout_health_counts_bake_traffic_but_not_test_traffic() -> None:
    logged = [
        {
            "request_id": str(i),
            "model_version": "m@2",
            "role": "live",
            "status": 200,
            "latency_ms": 1.0,
            "output": "[0]",
            "live_output": None,
            "traffic": kind,
        }
        for i, kind in enumerate(["live", "bake", "bake", "synthetic", "test", "test"])
    ]
    assert version_health(logged)["m@2"].requests == 4


@pytest.mark.parametrize(
    ("header", "kind"),
    [(None, "live"), (b"bake", "bake"), (b"Test", "test"), (b"synthetic", "synthetic")],
)
def test_the_traffic_header_names_a_kind(header: bytes | None, kind: str) -> None:
    assert traffic_of(header) == kind


def test_an_unknown_traffic_kind_is_refused_naming_the_header() -> None:
    with pytest.raises(ValueError, match=r"x-mlstack-traffic: 'canary' is not one of live, bake"):
        traffic_of(b"canary")
