"""A tracking server that goes away: metrics wait in the buffer and are written when it comes
back; if it never does, they are saved to a file that `mlstack tracking replay` uploads."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from stack.errors import TrackingUnavailable
from stack.plugins.manifest import AdapterContext
from stack_mlflow.config import MlflowTrackerConfig
from stack_mlflow.tracker import MlflowTracker
from tests.support.mlflow_server import MlflowServer

pytestmark = pytest.mark.postgres


@pytest.fixture
def server(mlflow_server: MlflowServer) -> Iterator[MlflowServer]:
    """The session's server, which these tests stop; it is always running again after."""
    try:
        yield mlflow_server
    finally:
        mlflow_server.thaw()
        if not mlflow_server.healthy():
            mlflow_server.start()


def tracker_for(server: MlflowServer, context: AdapterContext, **options: object) -> MlflowTracker:
    config = MlflowTrackerConfig(tracking_uri=server.url, flush_interval_seconds=0.2, **options)
    return MlflowTracker(config, context)


def log_steps(tracker: MlflowTracker, run, steps: range) -> None:  # type: ignore[no-untyped-def]
    for step in steps:
        tracker.log_metrics(run, {"loss": 1.0 / (step + 1)}, step=step)


def test_metrics_wait_for_the_server_and_are_written_when_it_returns(
    server: MlflowServer, context: AdapterContext
) -> None:
    tracker = tracker_for(server, context, retry_backoff_seconds=0.2)
    run = tracker.start_run("outage")
    log_steps(tracker, run, range(0, 500))
    server.stop()
    log_steps(tracker, run, range(500, 2000))  # no error: the points wait in the buffer
    assert tracker.buffer.pending(run.run_id) > 0
    server.start()
    tracker.finish_run(run)
    client = MlflowClient(server.url)
    assert len(client.get_metric_history(run.run_id, "loss")) == 2000
    assert client.get_run(run.run_id).info.status == "FINISHED"


def test_server_that_never_returns_fails_the_run_and_keeps_the_metrics_for_replay(
    server: MlflowServer, context: AdapterContext, tmp_path: Path
) -> None:
    tracker = tracker_for(server, context, retry_attempts=3, retry_backoff_seconds=0.1)
    run = tracker.start_run("outage")
    log_steps(tracker, run, range(0, 300))
    server.stop()
    log_steps(tracker, run, range(300, 1200))
    with pytest.raises(TrackingUnavailable) as caught:
        tracker.finish_run(run)
    message = str(caught.value)
    assert "unreachable" in message and "mlstack tracking replay" in message
    spill_file = Path(message.split("mlstack tracking replay ")[1].strip())
    assert spill_file.is_file()

    server.start()
    (tmp_path / "stack.yaml").write_text(
        f"name: remote\ntracker: {{adapter: mlflow, tracking_uri: '{server.url}'}}\n"
        f"spine: {{url: 'sqlite:///{tmp_path / 'spine.db'}'}}\n"
    )
    mlstack = Path(sys.executable).parent / "mlstack"
    result = subprocess.run(
        [str(mlstack), "--stack", "stack.yaml", "tracking", "replay", str(spill_file)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    client = MlflowClient(server.url)
    assert len(client.get_metric_history(run.run_id, "loss")) == 1200
    assert client.get_run(run.run_id).info.status == "FINISHED"
    assert not spill_file.exists()  # renamed once replayed, so it is not uploaded twice by accident


def test_server_that_hangs_holds_training_up_for_one_call_timeout_not_for_the_hang(
    server: MlflowServer, context: AdapterContext
) -> None:
    """A frozen server accepts connections and never answers: every write would wait for
    MLflow's HTTP timeout (30 s) again and again. The call timeout bounds the whole hang to
    about one timeout (then calls fail at once while the hung call is outstanding), the run's
    points go to the spill file when it finishes, and replaying it loses nothing."""
    tracker = tracker_for(
        server, context, call_timeout_seconds=1, retry_attempts=2, retry_backoff_seconds=0.1
    )
    run = tracker.start_run("hang")
    log_steps(tracker, run, range(0, 300))
    server.freeze()
    started = time.monotonic()
    log_steps(tracker, run, range(300, 3000))  # ~20 flush intervals, 2 full batches
    with pytest.raises(TrackingUnavailable) as caught:
        tracker.finish_run(run)
    held = time.monotonic() - started
    # without the bound: >= 30 s for each of the many writes attempted during the hang
    assert held < 25, f"training held up {held:.1f} s by a hung server"
    assert "within 1 s" in str(caught.value) or "no answer" in str(caught.value)
    spill_file = Path(str(caught.value).split("mlstack tracking replay ")[1].strip())

    server.thaw()
    tracker.replay(spill_file)
    client = MlflowClient(server.url)
    assert len(client.get_metric_history(run.run_id, "loss")) == 3000
    assert client.get_run(run.run_id).info.status == "FINISHED"
