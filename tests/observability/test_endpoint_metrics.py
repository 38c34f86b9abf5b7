"""An endpoint worker's metrics: what the prediction log's outages count, what a worker that
exits leaves in the sums, and the `metrics` option of the server section.

prometheus_client's multiprocess mode holds one folder per process, set once: each check
runs in a process of its own (spawned, as a BentoML worker is), never in pytest's."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from stack.errors import StackConfigError
from stack.preflight import preflight
from stack_bentoml.metrics import ENDPOINT_METRICS, EndpointMetrics, exposition
from stack_bentoml.predictlog import LogOutage


def _value(text: bytes, sample: str) -> float:
    for line in text.decode().splitlines():
        if line.startswith(sample + " "):
            return float(line.rpartition(" ")[2])
    raise AssertionError(f"{sample} not in\n{text.decode()}")


def in_worker(check: Callable[[Path], None], folder: Path) -> None:
    """`check(folder)` in a spawned process; its failure is raised here."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(check, folder).result(timeout=120)


def _worker(directory: str, requests: int) -> None:
    metrics = EndpointMetrics(Path(directory), "churn")
    metrics.in_flight += 1
    for _ in range(requests):
        metrics.answered("churn@2", "canary", 0.0)
    metrics.close()  # exits with a request in flight: its live gauge goes with it


def test_rows_lost_in_outages_are_counted_once_each(tmp_path: Path) -> None:
    in_worker(_outages, tmp_path)


def _outages(tmp_path: Path) -> None:
    metrics = EndpointMetrics(tmp_path, "churn")
    dropped = 'mlstack_endpoint_prediction_log_dropped_rows_total{endpoint="churn"}'
    lag = 'mlstack_endpoint_prediction_log_lag_seconds{endpoint="churn"}'
    assert _value(metrics.exposition(), dropped) == 0

    outage = LogOutage(since=1000.0, error="PermissionError", lost=5)
    metrics.log_state(outage, now=1030.0)
    metrics.log_state(outage, now=1031.0)  # the same loss, seen again
    assert _value(metrics.exposition(), dropped) == 5
    assert _value(metrics.exposition(), lag) == 31

    metrics.log_state(LogOutage(since=1000.0, error="e", lost=7), now=1032.0)
    metrics.log_state(None, now=1033.0)
    metrics.log_state(LogOutage(since=2000.0, error="e", lost=3), now=2001.0)  # a new outage
    assert _value(metrics.exposition(), dropped) == 10
    metrics.log_state(None, now=2002.0)
    assert _value(metrics.exposition(), lag) == 0


def test_an_exited_workers_requests_stay_and_its_in_flight_goes(tmp_path: Path) -> None:
    in_worker(_exited, tmp_path)


def _exited(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")  # a worker of its own, as BentoML's
    child = context.Process(target=_worker, args=(str(tmp_path), 3))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    metrics = EndpointMetrics(tmp_path, "churn")
    metrics.answered("churn@2", "canary", 0.0)
    text = metrics.exposition()
    requests = 'mlstack_endpoint_requests_total{code="200",endpoint="churn",role="canary",'
    assert _value(text, requests + 'version="churn@2"}') == 4
    assert _value(text, 'mlstack_endpoint_in_flight_requests{endpoint="churn"}') == 0
    assert exposition(tmp_path) == text
    assert os.getpid() != child.pid


def test_a_request_is_counted_by_the_next_scrape(tmp_path: Path) -> None:
    in_worker(_declared, tmp_path)


def _declared(tmp_path: Path) -> None:
    metrics = EndpointMetrics(tmp_path, "churn")
    metrics.answered("churn@1", "champion", 0.0)
    names = {
        line.split()[2] for line in metrics.exposition().decode().splitlines() if "# TYPE" in line
    }
    assert "mlstack_endpoint_requests_total" in names


def test_latencies_fall_in_their_buckets(tmp_path: Path) -> None:
    in_worker(_buckets, tmp_path)


def _buckets(tmp_path: Path) -> None:
    metrics = EndpointMetrics(tmp_path, "churn")
    for _ in range(2):
        metrics.answered("churn@1", "champion", time.perf_counter() - 0.003)
    metrics.answered("churn@1", "champion", time.perf_counter() - 30)
    text = metrics.exposition()
    bucket = 'mlstack_endpoint_request_duration_seconds_bucket{endpoint="churn",le="%s",'
    version = 'role="champion",version="churn@1"}'
    assert _value(text, bucket % "0.0025" + version) == 0
    assert _value(text, bucket % "0.005" + version) == 2
    assert _value(text, bucket % "2.5" + version) == 2
    assert _value(text, bucket % "+Inf" + version) == 3
    total = _value(
        text, 'mlstack_endpoint_request_duration_seconds_sum{endpoint="churn",' + version
    )
    assert 30.006 <= total < 31


def test_every_exported_metric_is_declared_and_exported_from_the_start(tmp_path: Path) -> None:
    in_worker(_all, tmp_path)


def _all(tmp_path: Path) -> None:
    metrics = EndpointMetrics(tmp_path, "churn")
    metrics.answered("churn@1", "champion", 0.0)
    metrics.failed("churn@2", "canary")
    metrics.rejected(422, "invalid_payload")
    metrics.revision(3, 0.5)
    metrics.log_state(None, now=0.0)
    names = {
        line.split()[2] for line in metrics.exposition().decode().splitlines() if "# TYPE" in line
    }
    assert names == set(ENDPOINT_METRICS), names ^ set(ENDPOINT_METRICS)


def test_a_bad_metrics_option_names_the_field(tmp_path: Path) -> None:
    (tmp_path / "stack.yaml").write_text("name: s\nserver: {adapter: bentoml, metrics: maybe}\n")
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "recipe.yaml").write_text("name: r\nsteps:\n  - {name: a, run: 'steps:a'}\n")
    (tmp_path / "r" / "steps.py").write_text("def a():\n    return 1\n")
    with pytest.raises(StackConfigError) as caught:
        preflight(tmp_path / "stack.yaml", tmp_path / "r")
    assert any("server.metrics" in problem for problem in caught.value.problems)


def test_a_server_started_without_the_supervisor_gets_a_folder_of_its_own(
    tmp_path: Path,
) -> None:
    in_worker(_default_folder, tmp_path)


def _default_folder(tmp_path: Path) -> None:
    import shutil
    import tempfile

    from stack_bentoml.metrics import METRICS_ENV

    os.environ[METRICS_ENV] = ""  # the supervisor's word for off
    assert EndpointMetrics.from_environment("churn") is None
    del os.environ[METRICS_ENV]  # a pod running `bentoml serve` itself
    metrics = EndpointMetrics.from_environment("churn")
    assert metrics is not None
    expected = Path(tempfile.gettempdir()) / f"mlstack-metrics-{os.getppid()}"
    try:
        assert metrics.directory == expected
        metrics.answered("churn@1", "champion", 0.0)
        assert b'version="churn@1"' in metrics.exposition()
    finally:
        shutil.rmtree(expected, ignore_errors=True)


def test_a_write_that_fails_turns_the_workers_metrics_off_and_never_raises(
    tmp_path: Path,
) -> None:
    in_worker(_write_fails, tmp_path)


def _write_fails(tmp_path: Path) -> None:
    import shutil

    from stack_bentoml.metrics import MetricsUnavailable

    (tmp_path / "metrics").mkdir()
    metrics = EndpointMetrics(tmp_path / "metrics", "churn")
    shutil.rmtree(tmp_path / "metrics")  # the folder goes: new series have nowhere to go
    (tmp_path / "metrics").write_text("not a folder\n")
    metrics.answered("churn@9", "canary", 0.0)
    metrics.rejected(422, "invalid_payload", "churn@9", "canary")  # the request path: no raise
    metrics.failed("churn@9", "canary")
    metrics.flush()
    assert metrics.fault is not None and str(tmp_path / "metrics") in metrics.fault
    with pytest.raises(MetricsUnavailable, match="metrics off in this worker"):
        metrics.exposition()
    metrics.close()
