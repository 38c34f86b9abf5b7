"""Serving under faults, one run on 127.0.0.1: the mlstack endpoint (BentoML adapter, two
workers, prediction log on) with single-row requests flowing the whole time.

(a) Time to a live split: 30 routes between two canary splits; for each, from the moment the
    endpoint file was written to the moment the last worker put it in force (each worker's
    acknowledgement, acks.py). Goal: p99 <= 1 s.
(b) Requests lost per fault that the champion could have answered (any failed or unanswered
    request: the input is valid), for kill -9 of a challenger's process and of a worker
    (KILLS times: the mean per kill), each during 8 s of load on a 50/50 canary. Goal: 0.
    A worker's kill also loses the prediction-log rows it answered since its last flush:
    answered request ids missing from the log, per kill, beside the rows answered in one
    flush interval (the documented bound).
(c) The champion's p99 with a canary taking 0.4 s per call at 10% relative to the champion
    alone, the canary loaded but sent nothing (the median of three 5 s runs of each,
    alternated): load from 8 clients whose
    requests the split routes to the champion (a sticky split: the client knows), plus,
    beside the canary, 8 clients whose requests it routes to the canary. Goal: <= 1.2x.

Bounded: about two minutes in all, loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Comparison, print_table, write_results
from _load import request_bytes
from serving import FEATURES, HOST, free_port, prepare

CONNECTIONS = 8
KILLS = 3  # of a worker: requests in flight on it vary from one kill to the next
FLUSH_SECONDS = 0.5


@dataclass(frozen=True)
class Answer:
    status: int  # 0: sent, and the connection failed before an answer
    version: str  # the version that answered
    arm: str  # the version the request was routed to (its subject's, a sticky split)
    ms: float
    request_id: str = ""


async def _client(load: Load, arm: str) -> None:
    """Requests routed to `arm` one after another on a keep-alive connection, reconnecting
    after a failure."""
    port, out, payloads = load.port, load.answers, itertools.cycle(load.requests[arm])
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    while time.perf_counter() < load.until:
        payload = next(payloads)
        started = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(HOST, port)
        except OSError:  # nothing listens: no request was sent
            await asyncio.sleep(0.05)
            continue
        assert reader is not None
        try:
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
            fields = {k.strip().lower(): v.strip() for k, v in fields.items()}
            await reader.readexactly(int(fields.get(b"content-length", b"0")))
            version = fields.get(b"x-model-version", b"").decode()
            elapsed = (time.perf_counter() - started) * 1000
            rid = fields.get(b"x-request-id", b"").decode()
            out.append(Answer(int(head[9:12]), version, arm, elapsed, rid))
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            out.append(Answer(0, "", arm, (time.perf_counter() - started) * 1000))
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


class Load:
    """Clients in a thread, for at most `seconds` (or until the block ends, with
    `until_done`): every answer, in order. Each request names a subject (2,000 in turn);
    with a sticky split `weights`, each client sends only subjects routed to one version
    (`clients`: how many per version), so the load on each is known."""

    def __init__(
        self,
        port: int,
        seconds: float,
        *,
        until_done: bool = False,
        weights: dict[str, float] | None = None,
        clients: dict[str, int] | None = None,
    ) -> None:
        row = json.dumps({name: 0.1 * i for i, name in enumerate(FEATURES)}).encode()
        self.requests: dict[str, list[bytes]] = {}
        for subject in (f"subject-{i}" for i in range(2000)):
            arm = _arm(subject.encode(), weights or {})
            sent = request_bytes(HOST, port, "/predict", row, {"x-mlstack-subject": subject})
            self.requests.setdefault(arm, []).append(sent)
        self.clients = clients or {"": CONNECTIONS}
        self.port, self.until_done = port, until_done
        self.until = time.perf_counter() + seconds
        self.answers: list[Answer] = []
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        async def run() -> None:
            clients = [_client(self, arm) for arm, n in self.clients.items() for _ in range(n)]
            await asyncio.gather(*clients)

        asyncio.run(run())

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self.until_done:
            self.until = 0.0
        self.thread.join()

    def lost(self) -> int:
        return sum(1 for a in self.answers if a.status != 200)

    def p99_ms(self, arm: str) -> float:
        """p99 of the requests routed to `arm` (answered by it or, failing it, another)."""
        latencies = [a.ms for a in self.answers if a.arm == arm]
        return statistics.quantiles(latencies, n=100, method="inclusive")[98]


def _arm(subject: bytes, weights: dict[str, float]) -> str:
    """The version a sticky split routes `subject` to (as the endpoint's Routing.choose)."""
    point = (zlib.crc32(subject) % 10_000) / 10_000
    live = [(ref, weight) for ref, weight in weights.items() if weight > 0]
    total, reached = sum(w for _, w in live), 0.0
    for ref, weight in live:
        reached += weight / total
        if point < reached:
            return ref
    return live[-1][0] if live else ""


def slow_version(context: Any) -> Any:
    """A pyfunc of the bench's columns that takes SLOW_SECONDS per call."""
    import mlflow.pyfunc
    import numpy as np
    import pandas as pd

    from stack_mlflow.config import MlflowRegistryConfig, MlflowTrackerConfig
    from stack_mlflow.registry import MlflowRegistry
    from stack_mlflow.tracker import MlflowTracker

    class Slow(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
        def predict(self, context: object, model_input: Any, params: Any = None) -> Any:
            import time

            time.sleep(0.4)  # a canary's latency
            return [0] * len(model_input)

    frame = pd.DataFrame(np.random.default_rng(2).normal(size=(3, 20)), columns=FEATURES)
    tracker = MlflowTracker(MlflowTrackerConfig(), context)
    run = tracker.start_run("serving-faults-bench")
    uri = tracker.log_model(
        run,
        Slow(),
        name="slow",
        framework="python",
        requirements=["scikit-learn"],
        input_example=frame,
    )
    version = MlflowRegistry(MlflowRegistryConfig(), context).register(
        "bench", uri, run_id=run.run_id
    )
    tracker.finish_run(run)
    return version


def time_to_live_split(server: Any, folder: Path, port: int, a: str, b: str) -> list[float]:
    """Seconds from each write of the endpoint file to its split in force in every worker."""
    from stack.contract.serving import TrafficSplit
    from stack_bentoml import family
    from stack_bentoml.acks import read_ack

    seconds = []
    pid = int((folder / "server.pid").read_text())
    with Load(port, 60.0, until_done=True) as load:
        for i in range(30):
            share = 0.9 if i % 2 else 0.1
            routed = server.route("bench", TrafficSplit({a: 1 - share, b: share}, champion=a))
            written = (folder / "endpoint.json").stat().st_mtime_ns / 1e9
            acks = [read_ack(folder, worker) for worker in family.workers(pid)]
            assert all(ack is not None and ack.revision == routed.revision for ack in acks)
            seconds.append(max(ack.at for ack in acks if ack is not None) - written)
    print(f"  {len(seconds)} splits under load, {load.lost()} requests lost", flush=True)
    return seconds


def lost_to(kill: str, port: int, folder: Path, challenger: Any) -> tuple[int, int, int]:
    """During 8 s of load when one `kill` (challenger, worker) gets SIGKILL: the requests
    lost, the answered ones missing from the prediction log, and the rows of the killed
    worker's largest flush (its files in the log; 0 for a challenger, which logs nothing)."""
    import pyarrow.parquet as pq

    from stack_bentoml import family
    from stack_bentoml.predictlog import read_log

    server_pid = int((folder / "server.pid").read_text())
    workers = family.workers(server_pid)
    with Load(port, 8.0) as load:
        time.sleep(2.0)
        if kill == "worker":
            victim = workers[0]
        else:
            pids = (folder / "isolated").glob(f"bench-v{challenger.version}.*.pid")
            victim = int(next(pids).read_text())
        os.kill(victim, signal.SIGKILL)
    answered = {a.request_id for a in load.answers if a.status == 200}
    log = folder.parent.parent / "predictions" / "bench"
    missing = len(answered)
    for _ in range(40):  # the live workers' last rows reach the log within a flush or two
        time.sleep(2 * FLUSH_SECONDS)
        logged = set(read_log(log).column("request_id").to_pylist())
        if len(answered - logged) == missing:
            break
        missing = len(answered - logged)
    flushed = log.glob(f"date=*/hour=*/{victim}-*.parquet")  # a file per flush (predictlog)
    per_flush = max((pq.read_metadata(f).num_rows for f in flushed), default=0)
    print(
        f"  kill -9 of a {kill}: {len(load.answers)} requests, {load.lost()} lost, "
        f"{missing} answered ones not logged (its largest flush: {per_flush} rows)",
        flush=True,
    )
    return load.lost(), missing, per_flush


def _ready(server: Any, a: str, b: str) -> None:
    """Once BentoML has started a worker in place of a killed one, the 50/50 split is in
    force in every worker again (the route waits for each to acknowledge it)."""
    from stack.contract.serving import TrafficSplit
    from stack.errors import StackError

    for _ in range(60):
        try:
            server.route("bench", TrafficSplit({a: 0.5, b: 0.5}, champion=a))
            return
        except StackError:  # the new worker is still loading
            time.sleep(1.0)


def champion_p99(server: Any, port: int, weights: dict[str, float], champion: str) -> float:
    """p99 of the requests routed to `champion` (CONNECTIONS clients) in 5 s, with as many
    clients more sending only requests routed to the other version, if any (sticky split)."""
    from stack.contract.serving import TrafficSplit

    server.route("bench", TrafficSplit(weights, sticky=True, champion=champion))
    clients = {arm: CONNECTIONS for arm, weight in weights.items() if weight > 0}
    with Load(port, 5.0, weights=weights, clients=clients) as load:
        pass
    to_champion = sum(1 for a in load.answers if a.arm == champion)
    print(
        f"  {weights}: {to_champion} requests to the champion, "
        f"{len(load.answers) - to_champion} to the canary",
        flush=True,
    )
    return load.p99_ms(champion)


def main() -> int:
    argparse.ArgumentParser(description=__doc__).parse_args()
    from stack.contract.serving import TrafficSplit
    from stack_bentoml.config import BentoConfig
    from stack_bentoml.server import BentoServer

    with tempfile.TemporaryDirectory(prefix="mlstack-serving-faults-") as scratch:
        context, (a, b), _ = prepare(Path(scratch))
        slow = slow_version(context)
        config = BentoConfig(port=free_port(), workers=2, log_flush_seconds=FLUSH_SECONDS)
        server = BentoServer(config, context)
        folder = context.home / "serving" / "bench"
        port = int(server.deploy(a, endpoint="bench").url.rsplit(":", 1)[1])
        try:
            print("serving under faults: two workers, 1-row requests", flush=True)
            server.add_version(b, endpoint="bench")
            splits = time_to_live_split(server, folder, port, a.ref, b.ref)
            server.route("bench", TrafficSplit({a.ref: 0.5, b.ref: 0.5}, champion=a.ref))
            lost_challenger, _, _ = lost_to("challenger", port, folder, b)
            kills = []
            for _ in range(KILLS):
                kills.append(lost_to("worker", port, folder, b))
                _ready(server, a.ref, b.ref)  # the arbiter's new worker has the split
            server.route("bench", TrafficSplit({a.ref: 1.0}))  # waits for the new worker too
            server.add_version(slow, endpoint="bench")
            server.route("bench", TrafficSplit({a.ref: 1.0, slow.ref: 0.0}, champion=a.ref))
            alone_runs, slow_runs = [], []
            for _ in range(3):  # alternated, so that the machine's own load weighs on both
                # the canary loaded but sent nothing: its process is not started anew for
                # each run (a rollout starts it once), so only its traffic differs
                idle = {a.ref: 1.0, slow.ref: 0.0}
                alone_runs.append(champion_p99(server, port, idle, a.ref))
                canary = {a.ref: 0.9, slow.ref: 0.1}
                slow_runs.append(champion_p99(server, port, canary, a.ref))
            alone, beside_slow = statistics.median(alone_runs), statistics.median(slow_runs)
        finally:
            server.undeploy("bench")

    p99 = statistics.quantiles(splits, n=100, method="inclusive")[98]
    print(f"time to a live split: median {statistics.median(splits):.3f} s, p99 {p99:.3f} s")
    print(f"champion p99: alone {alone:.1f} ms, beside a slow canary {beside_slow:.1f} ms")
    lost_worker = statistics.mean(k[0] for k in kills)
    rows_lost = statistics.mean(k[1] for k in kills)
    one_flush = statistics.mean(k[2] for k in kills)
    none = 1e-9  # a goal of zero, as a ratio's anchor
    comparisons = [
        Comparison("time to live split p99 s", "mlstack", "goal 1 s", p99, 1.0, False, 1.0, "ours"),
        Comparison(
            "lost: kill -9 challenger", "mlstack", "goal 0", lost_challenger, none, False, 0, "ours"
        ),
        Comparison(
            "lost: kill -9 worker", "mlstack", "goal 0", lost_worker, none, False, 0, "ours"
        ),
        Comparison(  # the documented bound: what the worker answered since its last flush
            "log rows lost: kill -9 worker",
            "mlstack",
            "largest flush",
            rows_lost,
            one_flush,
            False,
            1.0,
        ),
        Comparison(
            "champion p99 ms", "slow canary 10%", "champion alone", beside_slow, alone, False, 1.2
        ),
    ]
    print_table("Serving under faults", comparisons, "")
    print(f"results: {write_results('serving_faults', comparisons)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
