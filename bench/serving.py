"""Serving throughput, latency and CPU per request, one run on 127.0.0.1, the server on one core:

(a) the mlstack endpoint (BentoML adapter; prediction log on, a 90/10 canary split routed),
(b) a default one-file BentoML 1.4 service of the same model,
(c) `mlflow models serve` of the same model,
(d) a minimal raw ASGI app under uvicorn calling the same predict (the practical limit).

Each is driven with single-row JSON requests at 8 and 32 keep-alive connections for a bounded
time. Then a bounded soak of (a): zero failed requests, and memory (the server's whole process
tree: arbiter, worker, the challenger's process) that stops growing — RSS at the soak's end
against its middle, so that the allocator's first high-water mark (reached over the first
~150,000 requests, then flat) is not read as a leak.

Then (a) again with 2 workers, the server on both cores, at 32 connections: against (a) with
one worker on one core. The client keeps core 1, which the second worker shares on a 2-core
machine.

Goals (RPS_GOALS, P99_GOAL, SCALE_GOAL): (a) >= 2x the requests/s of (b) and of (c) (serving
issue), >= 0.9x (d)'s and p99 at 32 connections <= 1.2x (d)'s (issue #25, which raised the
serving issue's 0.5x and 2x); 2 workers >= 1.7x one (issue #25); no failed request in the
soak, and RSS at its end within 5% of halfway.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Comparison, print_table, write_results
from _load import LoadResult, drive

FEATURES = [f"f{i}" for i in range(20)]
HOST = "127.0.0.1"
#: goals on the ratio to each anchor: >= 2x a default BentoML service and `mlflow models
#: serve` (serving issue), >= 0.9x the raw ASGI app with logging and routing on (issue #25)
RPS_GOALS = {"bentoml": 2.0, "mlflow-serve": 2.0, "raw-asgi": 0.9}
P99_GOAL = 1.2  # p99 at 32 connections against the raw ASGI app's (issue #25)
#: 2 workers on 2 cores against 1 worker on 1 (issue #25). On a 2-core machine the client
#: keeps one of the two cores, so the second worker shares it: the figure is what a second
#: worker adds there, under the goal's premise of cores to spare.
SCALE_GOAL = 1.7
SOAK_GROWTH_GOAL = 1.05  # RSS at the soak's end against halfway: memory that stops growing
SERVER_CPU = {0}
CLIENT_CPU = {1}
BIN = Path(sys.executable).parent

DEFAULT_BENTO = """
import os
import bentoml
import mlflow.sklearn
import numpy as np

@bentoml.service
class Default:
    def __init__(self):
        self.model = mlflow.sklearn.load_model(os.environ["BENCH_MODEL_DIR"])

    @bentoml.api
    def predict(self, inputs: list[list[float]]) -> list[int]:
        return self.model.predict(np.asarray(inputs)).tolist()
"""

RAW_ASGI = """
import json
import os
import mlflow.sklearn
import numpy as np

model = mlflow.sklearn.load_model(os.environ["BENCH_MODEL_DIR"])
HEADERS = [(b"content-type", b"application/json")]

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["method"] == "GET":
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": b"{}"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    row = json.loads(body)
    out = json.dumps({"predictions": model.predict(np.asarray([row])).tolist()}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [*HEADERS, (b"content-length", str(len(out)).encode())]})
    await send({"type": "http.response.body", "body": out})
"""


@dataclass(frozen=True)
class Target:
    name: str
    port: int
    path: str
    body: bytes
    pid: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        # each thread's children: a process started from a thread other than the main one
        # (a challenger's, started by the worker's watcher) is listed under that thread only
        for task in Path(f"/proc/{current}/task").glob("*"):
            with suppress(OSError):
                queue.extend(int(c) for c in (task / "children").read_text().split())
    return found


def cpu_seconds(pid: int) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for member in tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def rss_mib(pid: int) -> float:
    total = 0
    for member in tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def pin(pid: int, cpus: set[int] = SERVER_CPU) -> None:
    """Every thread of `pid`'s tree on `cpus`: a process's affinity is its main thread's,
    and threads already started (the endpoint's log writer, a challenger's sender and
    reader) keep theirs, which would let them run beside the client."""
    for member in tree(pid):
        for task in Path(f"/proc/{member}/task").glob("*"):
            with suppress(OSError, ValueError):
                os.sched_setaffinity(int(task.name), cpus)


def wait_ready(url: str, process: subprocess.Popen[bytes] | None, timeout: float = 240) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{url} not ready after {timeout} s")


@contextmanager
def process(command: list[str], cwd: Path, env: dict[str, str], ready: str) -> Iterator[int]:
    with open(cwd / f"server-{time.time_ns()}.log", "ab") as log:
        child = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_ready(ready, child)
            yield child.pid
        finally:
            os.killpg(child.pid, signal.SIGTERM)
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)


def measure(
    target: Target, connections: int, seconds: float, cpus: set[int] = SERVER_CPU
) -> tuple[LoadResult, float]:
    pin(target.pid, cpus)
    drive(HOST, target.port, target.path, target.body, connections=connections, seconds=2.0)
    before = cpu_seconds(target.pid)
    result = drive(
        HOST, target.port, target.path, target.body, connections=connections, seconds=seconds
    )
    used = cpu_seconds(target.pid) - before
    cpu_ms = used * 1000 / max(result.requests, 1)
    print(
        f"  {target.name:<14} {connections:>2} conns: {result.throughput:8.0f} req/s  "
        f"p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:7.2f} ms  "
        f"cpu {cpu_ms:5.2f} ms/req  failures {result.failures}",
        flush=True,
    )
    return result, cpu_ms


def prepare(folder: Path) -> tuple[Any, list[Any], Path]:
    import mlflow
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from stack.plugins.manifest import AdapterContext
    from stack_mlflow.config import MlflowRegistryConfig, MlflowTrackerConfig
    from stack_mlflow.registry import MlflowRegistry
    from stack_mlflow.tracker import MlflowTracker

    context = AdapterContext(folder / ".mlstack", folder)
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(2000, 20)), columns=FEATURES)
    labels = (frame["f0"] + frame["f3"] - frame["f7"] > 0).astype(int)
    tracker = MlflowTracker(MlflowTrackerConfig(), context)
    registry = MlflowRegistry(MlflowRegistryConfig(), context)
    run = tracker.start_run("serving-bench")
    versions = []
    for c in (1.0, 0.5):
        uri = tracker.log_model(
            run,
            LogisticRegression(C=c).fit(frame, labels),
            name=f"m{int(c * 10)}",
            framework="sklearn",
            requirements=["scikit-learn"],
            input_example=frame.head(2),
        )
        versions.append(registry.register("bench", uri, run_id=run.run_id))
    tracker.finish_run(run)
    logged = tracker.client.get_logged_model(versions[0].source_uri.split("/")[-1])
    model_dir = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=logged.artifact_location,
            dst_path=str(folder / "model"),
            tracking_uri=tracker.uri,
        )
    )
    return context, versions, model_dir


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--soak", type=float, default=60.0)
    args = parser.parse_args()
    os.sched_setaffinity(0, CLIENT_CPU)

    from stack.contract.serving import TrafficSplit
    from stack_bentoml.config import BentoConfig
    from stack_bentoml.server import BentoServer

    row = [0.1 * i for i in range(20)]
    results: dict[str, dict[int, tuple[LoadResult, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="mlstack-serving-bench-") as scratch:
        folder = Path(scratch)
        context, versions, model_dir = prepare(folder)
        env = {
            **os.environ,
            "BENCH_MODEL_DIR": str(model_dir),
            "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
            "BENTOML_DO_NOT_TRACK": "true",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "BENTOML_HOME": str(folder / "bentoml-default"),
        }
        (folder / "default_service.py").write_text(DEFAULT_BENTO)
        (folder / "raw_app.py").write_text(RAW_ASGI)

        def run_all(target: Target) -> None:
            results[target.name] = {n: measure(target, n, args.seconds) for n in (8, 32)}

        print("serving benchmark: 1-row JSON requests, server pinned to one core", flush=True)
        server = BentoServer(BentoConfig(port=free_port(), workers=1), context)
        champion, challenger = versions
        endpoint = server.deploy(champion, endpoint="bench")
        server.add_version(challenger, endpoint="bench")
        server.route("bench", TrafficSplit({champion.ref: 0.9, challenger.ref: 0.1}))
        ours = json.dumps(dict(zip(FEATURES, row, strict=True))).encode()
        pid = int((context.home / "serving" / "bench" / "server.pid").read_text())
        target = Target("mlstack", int(endpoint.url.rsplit(":", 1)[1]), "/predict", ours, pid)
        run_all(target)
        soak, soak_rss = run_soak(target, args.soak)
        server.undeploy("bench")

        # the same endpoint with 2 workers, the server on both cores (the client keeps core 1)
        two = BentoServer(BentoConfig(port=free_port(), workers=2), context)
        endpoint = two.deploy(champion, endpoint="bench2")
        two.add_version(challenger, endpoint="bench2")
        two.route("bench2", TrafficSplit({champion.ref: 0.9, challenger.ref: 0.1}))
        pid = int((context.home / "serving" / "bench2" / "server.pid").read_text())
        port = int(endpoint.url.rsplit(":", 1)[1])
        scaled = Target("mlstack-2w", port, "/predict", ours, pid)
        results[scaled.name] = {32: measure(scaled, 32, args.seconds, SERVER_CPU | CLIENT_CPU)}
        two.undeploy("bench2")

        port = free_port()
        command = [
            sys.executable,
            "-m",
            "bentoml",
            "serve",
            "default_service:Default",
            "--host",
            HOST,
            "--port",
            str(port),
        ]
        with process(command, folder, env, f"http://{HOST}:{port}/readyz") as pid:
            body = json.dumps({"inputs": [row]}).encode()
            run_all(Target("bentoml", port, "/predict", body, pid))

        port = free_port()
        command = [
            str(BIN / "mlflow"),
            "models",
            "serve",
            "-m",
            str(model_dir),
            "--env-manager",
            "local",
            "-h",
            HOST,
            "-p",
            str(port),
        ]
        with process(command, folder, env, f"http://{HOST}:{port}/ping") as pid:
            body = json.dumps({"dataframe_split": {"columns": FEATURES, "data": [row]}}).encode()
            run_all(Target("mlflow-serve", port, "/invocations", body, pid))

        port = free_port()
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "raw_app:app",
            "--host",
            HOST,
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        with process(command, folder, env, f"http://{HOST}:{port}/health") as pid:
            run_all(Target("raw-asgi", port, "/predict", json.dumps(row).encode(), pid))

    comparisons = []
    for connections in (8, 32):
        ours_rps = results["mlstack"][connections][0].throughput
        for anchor in ("bentoml", "mlflow-serve", "raw-asgi"):
            comparisons.append(
                Comparison(
                    f"req/s @{connections} conns",
                    "mlstack",
                    anchor,
                    ours_rps,
                    results[anchor][connections][0].throughput,
                    higher_is_better=True,
                    goal=RPS_GOALS[anchor],
                )
            )
    comparisons.append(
        Comparison(
            "req/s @32 conns",
            "mlstack 2 workers, 2 cores",
            "mlstack 1 worker, 1 core",
            results["mlstack-2w"][32][0].throughput,
            results["mlstack"][32][0].throughput,
            higher_is_better=True,
            goal=SCALE_GOAL,
        )
    )
    comparisons.append(
        Comparison(
            "p99 ms @32 conns",
            "mlstack",
            "raw-asgi",
            results["mlstack"][32][0].p99_ms,
            results["raw-asgi"][32][0].p99_ms,
            higher_is_better=False,
            goal=P99_GOAL,
        )
    )
    for anchor in ("bentoml", "raw-asgi"):
        comparisons.append(
            Comparison(
                "cpu ms/request @32",
                "mlstack",
                anchor,
                results["mlstack"][32][1],
                results[anchor][32][1],
                higher_is_better=False,
            )
        )
    comparisons.append(
        Comparison(
            "soak server RSS MiB",
            "end of soak",
            "halfway",
            soak_rss[1],
            soak_rss[0],
            higher_is_better=False,
            goal=SOAK_GROWTH_GOAL,
        )
    )
    comparisons.append(
        Comparison(
            "soak failed requests",
            "mlstack",
            "none allowed",
            float(soak.failures),
            0.0 + 1e-9,
            higher_is_better=False,
            goal=0.0,
            goal_on="ours",
        )
    )
    print_table("Serving: 1-row requests, server on one core", comparisons, "")
    print(
        f"soak: {soak.requests} requests in {soak.seconds:.0f} s, {soak.failures} failed; "
        f"RSS {soak_rss[0]:.0f} MiB halfway -> {soak_rss[1]:.0f} MiB at the end"
    )
    print(f"results: {write_results('serving', comparisons)}")
    return 0


def run_soak(target: Target, seconds: float) -> tuple[LoadResult, tuple[float, float]]:
    """`seconds` at 32 connections, in two halves: (requests of both halves, failures of
    both), and RSS MiB of the server's tree after the first half and after the second."""
    pin(target.pid)
    drive(HOST, target.port, target.path, target.body, connections=32, seconds=5.0)
    first = drive(HOST, target.port, target.path, target.body, connections=32, seconds=seconds / 2)
    middle = rss_mib(target.pid)
    second = drive(HOST, target.port, target.path, target.body, connections=32, seconds=seconds / 2)
    end = rss_mib(target.pid)
    result = LoadResult(
        requests=first.requests + second.requests,
        failures=first.failures + second.failures,
        seconds=first.seconds + second.seconds,
        p50_ms=max(first.p50_ms, second.p50_ms),
        p99_ms=max(first.p99_ms, second.p99_ms),
    )
    print(
        f"  soak {seconds:.0f} s @32: {result.throughput:.0f} req/s, {result.failures} failed, "
        f"RSS {middle:.0f} MiB halfway -> {end:.0f} MiB at the end",
        flush=True,
    )
    return result, (middle, end)


if __name__ == "__main__":
    raise SystemExit(main())
