"""Nothing logged is lost when a training script ends without finishing its run, or is
killed politely (SIGTERM)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from mlflow import MlflowClient

SCRIPT = """
import sys, time
from pathlib import Path
from stack.plugins.manifest import AdapterContext
from stack_mlflow.config import MlflowTrackerConfig
from stack_mlflow.tracker import MlflowTracker

uri, mode = sys.argv[1], sys.argv[2]
tracker = MlflowTracker(
    MlflowTrackerConfig(tracking_uri=uri, flush_interval_seconds=3600),
    AdapterContext(home=Path(".mlstack"), base_dir=Path(".")),
)
run = tracker.start_run("exits")
for step in range(2500):
    tracker.log_metrics(run, {"loss": 1.0 / (step + 1)}, step=step)
print(run.run_id, flush=True)
if mode == "sigterm":
    time.sleep(120)
elif mode == "crash":
    raise RuntimeError("training blew up")
"""


def start(tmp_path: Path, mode: str) -> tuple[subprocess.Popen[str], str]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, uri, mode],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, uri


def outcome(uri: str, run_id: str) -> tuple[int, str]:
    client = MlflowClient(uri)
    return len(client.get_metric_history(run_id, "loss")), client.get_run(run_id).info.status


def test_sigterm_flushes_every_point_and_marks_the_run_killed(tmp_path: Path) -> None:
    process, uri = start(tmp_path, "sigterm")
    assert process.stdout is not None
    run_id = process.stdout.readline().strip()
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=120)
    assert process.returncode == -signal.SIGTERM
    assert outcome(uri, run_id) == (2500, "KILLED")


def test_normal_exit_flushes_and_finishes_the_open_run(tmp_path: Path) -> None:
    process, uri = start(tmp_path, "exit")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert outcome(uri, out.strip()) == (2500, "FINISHED")


def test_crash_flushes_and_marks_the_run_failed(tmp_path: Path) -> None:
    process, uri = start(tmp_path, "crash")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 1
    assert "training blew up" in err
    assert outcome(uri, out.strip()) == (2500, "FAILED")
