"""Who is running a pipeline run, and whether that process still lives.

The process that drives a run records a lease with the run: its pid, its host and the
moment the kernel started it (so a pid reused by a later process does not pass for the
run's), and renews the lease's time every `RENEW_SECONDS` while the run is running.

A lease is judged where it is read: on its own host by the process itself (is that pid
alive, and did it start when the lease says?), which is exact; from another host only by
the lease's age, which cannot tell a dead process from a partitioned one, so an old lease
from elsewhere is `stale`, never `abandoned` (`mlstack doctor` says so and leaves it)."""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

from stack.processes import alive
from stack.spine.records import RunLease

#: How often the driving process renews its lease (seconds).
RENEW_SECONDS = 15.0
#: A lease from another host not renewed for this long is `stale`.
STALE_AFTER = timedelta(seconds=120)


class Liveness(StrEnum):
    ALIVE = "alive"  # the process runs (this host), or renewed recently (another host)
    DEAD = "dead"  # this host: the pid is gone, or it is another process now
    STALE = "stale"  # another host, not renewed for STALE_AFTER: cannot tell from here
    UNKNOWN = "unknown"  # no lease recorded (a run from before leases, a cluster's own run)


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """One process, for as long as it lives: `started` is the kernel's own start time of
    the pid (a token, compared for equality), empty where it cannot be read."""

    pid: int
    host: str
    started: str

    @classmethod
    def current(cls) -> ProcessIdentity:
        pid = os.getpid()
        return cls(pid, socket.gethostname(), process_started(pid) or "")

    def lease(self, renewed_at: datetime) -> RunLease:
        return RunLease(self.pid, self.host, self.started, renewed_at)

    def to_json(self) -> dict[str, object]:
        return {"pid": self.pid, "host": self.host, "started": self.started}


def current_owner() -> dict[str, object]:
    """This process, and the pipeline run it works for (if a step of one is running):
    what a rollout records as its owner, to be judged as a lease is."""
    from stack.contract.tracking import PIPELINE_RUN_ENV

    return {**ProcessIdentity.current().to_json(), "run_id": os.environ.get(PIPELINE_RUN_ENV)}


def judge(lease: RunLease | None, now: datetime, *, host: str | None = None) -> Liveness:
    """Whether the lease's process lives, as seen from `host` (this one by default) at `now`."""
    if lease is None:
        return Liveness.UNKNOWN
    if lease.host != (host or socket.gethostname()):
        return Liveness.STALE if now - lease.renewed_at > STALE_AFTER else Liveness.ALIVE
    if not alive(lease.pid):
        return Liveness.DEAD
    started = process_started(lease.pid)
    if lease.started and started is not None and started != lease.started:
        return Liveness.DEAD  # the pid was reused by another process
    return Liveness.ALIVE


def process_started(pid: int) -> str | None:
    """When the kernel started `pid`, as a token equal only for the same process: the boot
    and the start time in clock ticks from /proc (Linux), or psutil's create time where it
    is installed; None when neither can tell (no such process, another OS)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return _psutil_started(pid)
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    return f"{_boot_id()}:{fields[19]}"  # field 22 of stat: starttime


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _psutil_started(pid: int) -> str | None:
    try:
        import psutil  # type: ignore[import-untyped]
    except ImportError:
        return None
    try:
        return repr(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


class Heartbeat:
    """Renews a lease every `interval` seconds from a daemon thread until `renew` answers
    False (the run is no longer running) or `stop()`; a failed renewal is reported once on
    stderr and tried again (a spine that is briefly unreachable must not stop the run)."""

    def __init__(self, renew: Callable[[], bool], *, interval: float = RENEW_SECONDS) -> None:
        self._renew = renew
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mlstack-lease", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    def _loop(self) -> None:
        reported = False
        while not self._stopped.wait(self._interval):
            try:
                if not self._renew():
                    return
            except Exception as exc:
                if not reported:
                    print(f"mlstack: could not renew the run's lease: {exc}", file=sys.stderr)
                    reported = True
