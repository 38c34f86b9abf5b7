"""Each worker says which revision of the endpoint file it serves; the adapter reads them.

A worker writes `acks/<pid>.json` beside the endpoint file (`{"pid", "started",
"revision", "at"}`: its start time in clock ticks after boot, the revision now in force in
it, and when it took it, Unix seconds) once its routing for that revision is in place:
at start, and each time it takes a new revision. A route is in force when every worker of
the server has acknowledged it, which the adapter checks here before it returns (and so
before a rollout's bake starts). A file left by a dead worker, or by another process that
had the same pid, is never read as an acknowledgement: only the pids the server runs now
are asked, each with its start time."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from stack.atomic import write_atomic
from stack.errors import StackError
from stack_bentoml import family

ACK_DIR = "acks"


class SplitNotAcknowledged(StackError):
    """A worker of the server did not put a revision in force in time: the route was
    undone; the message names the workers that did not answer and what each serves."""


@dataclass(frozen=True, slots=True)
class Ack:
    pid: int
    revision: int
    at: float  # Unix seconds: when the worker put the revision in force


def write_ack(folder: Path, revision: int) -> None:
    """This worker serves `revision` now (atomically; never raises: an unwritable folder
    shows as a revision never acknowledged, which the adapter reports)."""
    pid = os.getpid()
    record = {"pid": pid, "started": family.started(pid), "revision": revision, "at": time.time()}
    try:
        (folder / ACK_DIR).mkdir(exist_ok=True)
        write_atomic(folder / ACK_DIR / f"{pid}.json", json.dumps(record))
    except OSError as error:
        print(f"mlstack endpoint: cannot acknowledge revision {revision} ({error})", flush=True)


def read_ack(folder: Path, pid: int) -> Ack | None:
    """What worker `pid` (the process running now under that pid) last acknowledged."""
    try:
        record = json.loads((folder / ACK_DIR / f"{pid}.json").read_text())
        if record["started"] != family.started(pid):  # another process had this pid
            return None
        return Ack(pid, int(record["revision"]), float(record["at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def not_acknowledged(folder: Path, workers: list[int], revision: int) -> list[int]:
    """The `workers` that have not yet put `revision` (or a later one) in force."""
    return [
        pid for pid in workers if (ack := read_ack(folder, pid)) is None or ack.revision < revision
    ]


def load_factor() -> float:
    """How much busier than one runnable process per core the machine is (the 1-minute load
    average per core), at least 1: the waits for a worker scale with it."""
    try:
        return max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))
    except OSError:
        return 1.0
