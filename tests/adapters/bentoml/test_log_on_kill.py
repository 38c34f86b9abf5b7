"""What a stop costs the prediction log, counted against a real `bentoml serve` under load:
kill -9 of a worker loses only rows answered since its last flush (at most one flush's worth),
and SIGTERM loses none."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pyarrow.parquet as pq

from stack_bentoml.config import BentoConfig
from stack_bentoml.server import BentoServer
from tests.adapters.bentoml.conftest import Stack, free_port, row


class Client:
    """One client sending requests one after another, each with its own id (`<prefix>N`):
    the ids answered 200, in the order the answers came."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url, self.prefix = url, prefix
        self.answered: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            for n in range(1_000_000):
                if self.stop.is_set():
                    return
                rid = f"{self.prefix}{n:07d}"
                try:
                    answer = client.post(
                        f"{self.url}/predict", json=row(), headers={"x-request-id": rid}
                    )
                except httpx.HTTPError:  # the worker died under it, or the server stopped
                    continue
                if answer.status_code == 200:
                    self.answered.append(rid)

    def end(self) -> None:
        self.stop.set()
        self.thread.join(60)


def flushes(log: Path, pid: int) -> list[list[str]]:
    """The request ids of each flush worker `pid` wrote, in its order (a file per flush)."""
    files = sorted(log.glob(f"date=*/hour=*/{pid}-*.parquet"), key=lambda p: p.stem.split("-"))
    return [pq.read_table(f, columns=["request_id"]).column(0).to_pylist() for f in files]


def until(condition: object, what: str, limit: float = 180.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"waited {limit:g} s for {what}"
        time.sleep(0.05)


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:  # no worker takes the connection yet
        return False


def test_kill_9_loses_only_rows_since_the_last_flush_and_sigterm_none(stack: Stack) -> None:
    with stack.session() as session:
        context = session.adapter_context()
    server = BentoServer(BentoConfig(port=free_port(), log_flush_seconds=0.2), context)
    endpoint = server.deploy(stack.versions.champion, endpoint="killed")
    log = context.home / "predictions" / "killed"
    try:
        worker = int(httpx.get(f"{endpoint.url}/endpoint").json()["pid"])
        client = Client(endpoint.url, "k")
        until(lambda: len(flushes(log, worker)) >= 8, "eight flushes under load")
        os.kill(worker, signal.SIGKILL)
        before = list(client.answered)  # all answered by the killed worker (the only one)
        client.end()
        written = flushes(log, worker)
        logged = {rid for batch in written for rid in batch}
        kept = [rid for rid in before if rid in logged]
        lost = before[len(kept) :]
        # every row answered before the last flush was written; the lost ones all came after
        assert before[: len(kept)] == kept, "a row answered before a later flush is missing"
        assert not set(lost) & logged
        # at most one flush's worth: the rows of the flush being written when it died and
        # those answered while it was written (a steady client: flushes hold alike)
        largest = max(len(batch) for batch in written[1:])
        assert len(lost) <= 2 * largest, (len(lost), [len(b) for b in written])

        # BentoML starts another worker; a graceful stop (SIGTERM) under load loses no row
        until(lambda: ready(endpoint.url), "a new worker")
        client = Client(endpoint.url, "t")
        until(lambda: len(client.answered) >= 200, "200 answers")
        server.undeploy("killed")  # SIGTERM, then waits for every process to exit
        client.end()
        logged = {r["request_id"] for r in pq.read_table(log, columns=["request_id"]).to_pylist()}
        assert client.answered and set(client.answered) <= logged
    finally:
        if "killed" in [e.name for e in server.endpoints()]:
            server.undeploy("killed")
