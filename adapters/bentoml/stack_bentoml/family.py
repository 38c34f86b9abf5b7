"""An endpoint's processes as one unit: find every one of them, and stop them all.

`bentoml serve` (the server) starts each worker in a session of its own, and a worker starts
each challenger (isolation.py) and multiprocessing's resource tracker as its children. A
worker exits with its server (lineage.py), but one that is stopped or stuck cannot, and then
nothing would manage it. So the endpoint's processes are found three ways, never taking in a
process that is not the endpoint's:

- the marker: each process the server starts inherits `MLSTACK_ENDPOINT_SPEC=<the endpoint
  file's absolute path>` (/proc/<pid>/environ is the environment a process started with);
- the sessions: a process in a session led by a marked process (a helper that cleared its
  environment);
- the port: whoever holds a listening socket on it (/proc/net/tcp and tcp6, and each
  process's descriptors). A holder that is not the endpoint's is a stranger: reported, never
  signalled.

Each process is known by its pid and its start time, and is signalled only while both still
match (a pid freed and reused meanwhile is another process). Linux only: elsewhere nothing
is found."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from stack.processes import alive

SPEC_ENV = "MLSTACK_ENDPOINT_SPEC"
WORKERS_ENV = "MLSTACK_WORKERS"  # how many workers the server runs (service.py)
_LISTEN = "0A"  # the TCP state in /proc/net/tcp


@dataclass(frozen=True, slots=True)
class Member:
    """One of the endpoint's processes: `role` is server, worker, challenger or helper;
    `listening`: it holds the endpoint's port."""

    pid: int
    parent: int
    started: int  # clock ticks after boot (/proc/<pid>/stat): tells a reused pid apart
    role: str
    listening: bool


@dataclass(frozen=True, slots=True)
class Family:
    """Every process of one endpoint on this machine, and who else holds its port."""

    members: tuple[Member, ...]
    strangers: tuple[int, ...]  # listening on the port, not the endpoint's: never signalled
    port_held: bool  # someone listens on the port (maybe a process this user cannot see)

    def below(self, root: int | None) -> set[int]:
        """The pids of `root` and of every member descending from it."""
        if root is None or root not in {m.pid for m in self.members}:
            return set()
        found, queue = {root}, [root]
        while queue:
            parent = queue.pop()
            for member in self.members:
                if member.parent == parent and member.pid not in found:
                    found.add(member.pid)
                    queue.append(member.pid)
        return found

    def strays(self, server: int | None) -> list[Member]:
        """The members the live `server` does not manage (all of them when it is dead)."""
        managed = self.below(server)
        return [m for m in self.members if m.pid not in managed]


def find(spec_path: Path, port: int) -> Family:
    """The processes of the endpoint whose file is `spec_path` (absolute, as the server was
    given it), serving on `port`."""
    stats = {pid: stat for pid in _pids() if (stat := _stat(pid)) is not None and stat[0] != "Z"}
    stats.pop(os.getpid(), None)
    tagged = {pid for pid in stats if marked(pid, spec_path)}
    # A session whose leader is alive and tagged is one the endpoint's process made (the
    # kernel reuses no pid that still names a session); a dead leader's pid proves nothing.
    ours = {pid for pid, stat in stats.items() if pid in tagged or stat[3] in tagged}
    sockets = _listening_sockets(port)
    holders = {pid for pid in stats if sockets and _holds(pid, sockets)}
    members = tuple(
        Member(
            pid=pid,
            parent=stats[pid][1],
            started=stats[pid][4],
            role=_role(pid),
            listening=pid in holders,
        )
        for pid in sorted(ours)
    )
    return Family(members, tuple(sorted(holders - ours)), port_held=bool(sockets))


def marked(pid: int, spec_path: Path) -> bool:
    """Whether process `pid` carries the marker of the endpoint whose file is `spec_path`."""
    return f"{SPEC_ENV}={spec_path}".encode() in _environ(pid)


def stop(family: Family, server: int | None, *, graceful: float) -> list[Member]:
    """Stop every member. The live `server` first, with SIGTERM: BentoML stops its workers
    gracefully (requests in flight finish, each worker writes its prediction log). Then each
    member that leads the rest (an orphaned worker) with SIGTERM and SIGCONT (a stopped
    process cannot act on SIGTERM until it runs), then each member still running the same
    way. After `graceful` seconds in all, SIGKILL for whatever is left. Returns the members
    still running after that (none, unless one is stuck in the kernel)."""
    deadline = time.monotonic() + graceful
    if server is not None and family.below(server):
        _signal(family, server, signal.SIGTERM)
        _wait(family, family.below(server), deadline)
    pids = {m.pid for m in family.members}
    roots = [m.pid for m in family.members if m.parent not in pids]
    for group in (roots, pids):  # the leaders, then whatever they left
        for pid in group:
            _signal(family, pid, signal.SIGTERM)
            _signal(family, pid, signal.SIGCONT)
        _wait(family, group, deadline)
    for pid in pids:
        _signal(family, pid, signal.SIGKILL)
    _wait(family, pids, time.monotonic() + 10.0)
    return [m for m in family.members if running(family, m.pid)]


def running(family: Family, pid: int) -> bool:
    """Whether the member `pid` still runs (not exited, not a zombie, not a reused pid)."""
    member = next((m for m in family.members if m.pid == pid), None)
    if member is None or not alive(pid):
        return False
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z" and stat[4] == member.started


def zombie(pid: int) -> bool:
    """Exited and not yet reaped by its parent (or gone already)."""
    stat = _stat(pid)
    return stat is None or stat[0] == "Z"


def children(pid: int) -> list[int]:
    """The children of every thread of `pid` (a worker starts an isolated version's process
    from its watcher thread, and /proc lists a child under the thread that started it)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return found


def workers(server: int) -> list[int]:
    """The server's worker processes (its children BentoML runs the service in)."""
    return sorted(pid for pid in children(server) if _role(pid) == "worker" and not zombie(pid))


def worker_count(server: int) -> int:
    """How many workers `server` runs: `MLSTACK_WORKERS` in its environment (1 unset)."""
    prefix = f"{WORKERS_ENV}=".encode()
    for entry in _environ(server):
        if entry.startswith(prefix):
            with contextlib.suppress(ValueError):
                return max(1, int(entry[len(prefix) :]))
    return 1


def started(pid: int) -> int | None:
    """When `pid` started (clock ticks after boot): tells a reused pid apart."""
    stat = _stat(pid)
    return stat[4] if stat is not None else None


def descendants(pid: int) -> list[int]:
    """Every process below `pid`."""
    found: list[int] = []
    queue = [pid]
    while queue:
        below = children(queue.pop())
        found.extend(below)
        queue.extend(below)
    return found


def _signal(family: Family, pid: int, signum: int) -> None:
    if running(family, pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def _wait(family: Family, pids: Iterable[int], deadline: float) -> None:
    waiting = list(pids)
    while time.monotonic() < deadline and any(running(family, p) for p in waiting):
        time.sleep(0.1)


def _pids() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []


def _stat(pid: int) -> tuple[str, int, int, int, int] | None:
    """(state, parent, process group, session, start time) from /proc/<pid>/stat."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    try:
        return fields[0], int(fields[1]), int(fields[2]), int(fields[3]), int(fields[19])
    except (IndexError, ValueError):
        return None


def _environ(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return []


def _role(pid: int) -> str:
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "helper"
    if b"_bentoml_impl.worker.service" in args:
        return "worker"
    if b"bentoml" in args and b"serve" in args:
        return "server"
    if any(arg.startswith(b"from multiprocessing.spawn import") for arg in args):
        return "challenger"
    return "helper"


def _listening_sockets(port: int) -> set[str]:
    """The listening TCP sockets on `port` (any address), as their descriptors read."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _LISTEN:
                continue
            if int(fields[1].rpartition(":")[2], 16) == port:
                found.add(f"socket:[{fields[9]}]")
    return found


def _holds(pid: int, sockets: set[str]) -> bool:
    try:
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except OSError:  # another user's process: not readable unless root
        return False
    for fd in descriptors:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") in sockets:
                return True
    return False
