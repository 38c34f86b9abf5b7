"""Metric logging through the MLflow adapter against MLflow's own ways, same store, same run.

On SQLite (the embedded stack), 10,000 points (one metric per step) through
`MlflowTracker.log_metrics` — buffered, validated, written with `log_batch`, everything on
disk when `finish_run` returns — against
  - `mlflow.log_metric` one by one (what a training loop writes by default);
  - `MlflowClient.log_batch` in batches of 1,000 (MLflow's per-call limit), the points built
    beforehand: the store's own speed, what buffering can at best reach.
Against an `mlflow server` on PostgreSQL (127.0.0.1:5432, database `mlstack_bench_tracking`,
created afresh; skipped, saying so, when PostgreSQL does not answer), 2,000 points through
the adapter against `mlflow.log_metric` one by one and against MLflow's asynchronous logging
(`mlflow.log_metric(..., synchronous=False)`, awaited at the end of the run, as its docs
recommend for training loops). Every figure counts every point readable afterwards.

Goals (Scale issue): >= 100x one by one on SQLite, no slower than `log_batch` (overhead
<= 5%); on the server >= 10x one by one and no slower than asynchronous logging.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Comparison, print_table, write_results

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_DATABASE = "mlstack_bench_tracking"


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


def one_by_one(uri: str, points: int, *, synchronous: bool = True) -> float:
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("bench-anchor")
    with mlflow.start_run() as run:
        start = time.perf_counter()
        for step in range(points):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step, synchronous=synchronous)
        if not synchronous:
            mlflow.flush_async_logging()  # every point written: the figure is comparable
        elapsed = time.perf_counter() - start
    history = mlflow.MlflowClient(uri).get_metric_history(run.info.run_id, "loss")
    assert len(history) == points
    return elapsed


def log_batch(uri: str, points: int) -> float:
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient(uri)
    experiment = client.create_experiment(f"bench-batch-{time.time_ns()}")
    run_id = client.create_run(experiment).info.run_id
    start = time.perf_counter()
    now = int(time.time() * 1000)
    metrics = [Metric("loss", 1.0 / (step + 1), now, step) for step in range(points)]
    for first in range(0, points, 1000):
        client.log_batch(run_id, metrics=metrics[first : first + 1000])
    client.set_terminated(run_id)
    elapsed = time.perf_counter() - start
    assert len(client.get_metric_history(run_id, "loss")) == points
    return elapsed


def best_of(runs: int, measure: Callable[[], float]) -> float:
    """The least of `runs` measurements: the one least disturbed by the rest of the machine."""
    return min(measure() for _ in range(runs))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _postgres_database() -> str | None:
    """A URI for the bench's own database (created empty), or None when PostgreSQL is not
    there."""
    try:
        import psycopg
    except ImportError:
        return None
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
            connection.execute(f"CREATE DATABASE {PG_DATABASE}")
    except psycopg.Error as exc:
        print(f"PostgreSQL at 127.0.0.1:5432 unusable ({exc}): remote figures skipped")
        return None
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_DATABASE}"


@contextlib.contextmanager
def mlflow_server(backend: str, folder: Path) -> Iterator[str]:
    """`mlflow server` on PostgreSQL at 127.0.0.1, as MLflow documents a team's server."""
    port = _free_port()
    mlflow = Path(sys.executable).parent / "mlflow"
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    log = (folder / "server.log").open("wb")
    command = [str(mlflow), "server", "--backend-store-uri", backend]
    command += ["--artifacts-destination", (folder / "artifacts").as_uri()]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"mlflow server exited: see {folder / 'server.log'}")
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/health", timeout=2):
                break
            time.sleep(0.5)
        else:
            raise RuntimeError("mlflow server not healthy within 180 s")
        yield url
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument(
        "--remote-points",
        type=int,
        default=2_000,
        help="points against the server (one by one over HTTP is ~10-40 ms a point)",
    )
    parser.add_argument("--runs", type=int, default=3, help="best of, for the fast figures")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    n = args.points
    comparisons: list[Comparison] = []
    with tempfile.TemporaryDirectory(prefix="mlstack-bench-") as scratch:
        home = Path(scratch)
        uri = f"sqlite:///{home / 'mlflow.db'}"
        mine = best_of(args.runs, lambda: ours(uri, n, home))
        batched = best_of(args.runs, lambda: log_batch(uri, n))
        single = one_by_one(uri, n)
        comparisons += [
            Comparison(
                f"seconds to log {n} points, SQLite",
                "mlstack log_metrics",
                "mlflow.log_metric one by one",
                mine,
                single,
                higher_is_better=False,
                goal=0.01,  # >= 100x faster
            ),
            Comparison(
                f"seconds to log {n} points, SQLite",
                "mlstack log_metrics",
                "MlflowClient.log_batch x1000",
                mine,
                batched,
                higher_is_better=False,
                goal=1.05,
            ),
        ]
        backend = _postgres_database()
        if backend is not None:
            r = args.remote_points
            with mlflow_server(backend, home) as url:
                mine = best_of(args.runs, lambda: ours(url, r, home))
                asynchronous = best_of(args.runs, lambda: one_by_one(url, r, synchronous=False))
                single = one_by_one(url, r)
            comparisons += [
                Comparison(
                    f"seconds to log {r} points, mlflow server + PostgreSQL",
                    "mlstack log_metrics",
                    "mlflow.log_metric one by one",
                    mine,
                    single,
                    higher_is_better=False,
                    goal=0.1,  # >= 10x faster
                ),
                Comparison(
                    f"seconds to log {r} points, mlflow server + PostgreSQL",
                    "mlstack log_metrics",
                    "mlflow.log_metric synchronous=False",
                    mine,
                    asynchronous,
                    higher_is_better=False,
                    goal=1.0,
                ),
            ]
    print_table("Metric logging, every point readable afterwards", comparisons, "s")
    print(f"results: {write_results('tracking', comparisons)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
