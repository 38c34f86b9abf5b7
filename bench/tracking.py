"""10,000 metric points through the MLflow adapter (buffered log_batch) against
`mlflow.log_metric` one by one, on the same SQLite store in the same run.

Goal (MLflow issue): at least 50x faster, with all 10,000 points readable afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Comparison, print_table, write_results

GOAL = 50.0


def ours(uri: str, points: int, home: Path) -> float:
    from stack.plugins.manifest import AdapterContext
    from stack_mlflow.config import MlflowTrackerConfig
    from stack_mlflow.tracker import MlflowTracker

    tracker = MlflowTracker(
        MlflowTrackerConfig(tracking_uri=uri), AdapterContext(home=home, base_dir=home)
    )
    run = tracker.start_run("bench-ours")
    start = time.perf_counter()
    for step in range(points):
        tracker.log_metrics(run, {"loss": 1.0 / (step + 1)}, step=step)
    tracker.finish_run(run)  # everything is written when this returns
    elapsed = time.perf_counter() - start
    assert len(tracker.client.get_metric_history(run.run_id, "loss")) == points
    return elapsed


def anchor(uri: str, points: int) -> float:
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("bench-anchor")
    with mlflow.start_run() as run:
        start = time.perf_counter()
        for step in range(points):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        elapsed = time.perf_counter() - start
    history = mlflow.MlflowClient(uri).get_metric_history(run.info.run_id, "loss")
    assert len(history) == points
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=10_000)
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    with tempfile.TemporaryDirectory(prefix="mlstack-bench-") as folder:
        home = Path(folder)
        uri = f"sqlite:///{home / 'mlflow.db'}"
        ours_seconds = ours(uri, args.points, home)
        anchor_seconds = anchor(uri, args.points)
    comparison = Comparison(
        metric=f"seconds_to_log_{args.points}_points",
        ours="mlstack MlflowTracker.log_metrics (log_batch)",
        anchor="mlflow.log_metric one by one",
        ours_value=round(ours_seconds, 3),
        anchor_value=round(anchor_seconds, 3),
        higher_is_better=False,
    )
    print_table("Metric logging on SQLite", [comparison], "s")
    speedup = anchor_seconds / ours_seconds
    verdict = "met" if speedup >= GOAL else "MISSED"
    print(
        f"\n{speedup:.0f}x faster, all {args.points} points readable. Goal >={GOAL:.0f}x: {verdict}"
    )
    print(f"results: {write_results('tracking', [comparison])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
