"""Process supervision of an endpoint's `bentoml serve`: started and awaited until ready,
watched while its workers take a revision, killed with everything below it when it never
served.

An endpoint's folder under `root` holds its endpoint file, the server's pid and its log. A
start or a revision fails as soon as the server shows it cannot take effect: a worker that
refuses the revision (it writes why, see app.py), a worker that exits before the server is
ready (BentoML's arbiter would restart it forever), or the server itself exiting; the error
carries the server log's last lines from that attempt."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stack.errors import StackError
from stack.processes import alive
from stack_bentoml import family
from stack_bentoml.acks import SplitNotAcknowledged, load_factor, not_acknowledged, read_ack
from stack_bentoml.config import LOG_URL_ENV, BentoConfig
from stack_bentoml.locks import flocked
from stack_bentoml.metrics import METRICS_ENV
from stack_bentoml.refusals import refusal_path
from stack_bentoml.spec import SPEC_FILE, EndpointSpec, read_spec

PID_FILE = "server.pid"
LOG_FILE = "server.log"


class PortTaken(StackError):
    """The server could not bind its port: another program took it between the choice of
    the port and the bind (a start may choose again)."""


class Supervisor:
    """The server processes of the endpoints under `root`, one folder each."""

    def __init__(self, root: Path, config: BentoConfig, bentoml_env: Mapping[str, str]) -> None:
        self.root = root
        self.config = config
        self.bentoml_env = dict(bentoml_env)

    def spec_path(self, endpoint: str) -> Path:
        return self.root / endpoint / SPEC_FILE

    def marker(self, endpoint: str) -> Path:
        """The endpoint file's absolute path: in the environment of each of its processes."""
        return self.spec_path(endpoint).resolve()

    def pid(self, endpoint: str) -> int | None:
        path = self.root / endpoint / PID_FILE
        try:
            return int(path.read_text())
        except (OSError, ValueError):
            return None

    def running(self, endpoint: str) -> bool:
        """Its server runs (the recorded pid, alive and carrying the endpoint's marker)."""
        pid = self.pid(endpoint)
        return (
            pid is not None
            and alive(pid)
            and self.spec_path(endpoint).is_file()
            and family.marked(pid, self.marker(endpoint))
        )

    def forget(self, endpoint: str) -> None:
        shutil.rmtree(self.root / endpoint, ignore_errors=True)

    def start(self, spec: EndpointSpec) -> None:
        """Start the server and wait until it is ready; otherwise kill it, remove its folder
        and raise with the reason and the server log's last lines."""
        folder = self.root / spec.name
        log_path = folder / LOG_FILE
        env = {
            **os.environ,
            family.SPEC_ENV: str(self.marker(spec.name)),
            family.WORKERS_ENV: str(self.config.workers),
            **self.bentoml_env,
            "PYTHONUNBUFFERED": "1",
        }
        if self.config.prediction_log is not None:
            env[LOG_URL_ENV] = self.config.prediction_log.connect_url()
        env[METRICS_ENV] = str(fresh_metrics_dir(folder)) if self.config.metrics else ""
        command = [
            sys.executable,
            "-m",
            "bentoml",
            "serve",
            "stack_bentoml.service:MlstackEndpoint",
            "--host",
            spec.host,
            "--port",
            str(spec.port),
        ]
        try:
            with open(log_path, "ab") as log:
                offset = log.tell()  # this start's lines only, in the error
                process = subprocess.Popen(
                    command,
                    cwd=folder,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
        except BaseException:
            self.forget(spec.name)
            raise
        try:
            (folder / PID_FILE).write_text(str(process.pid))
            failure = self._await_ready(spec, process)
        except BaseException:  # Ctrl-C while it starts: no server is left behind
            kill_server(process)
            self.forget(spec.name)
            raise
        if failure is None:
            return
        kill_server(process)
        last_lines = tail(log_path, offset=offset)  # before the folder (and the log) goes
        self.forget(spec.name)
        error = PortTaken if "Address already in use" in last_lines else StackError
        raise error(
            f"endpoint {spec.name!r} did not start: {failure}\n"
            f"--- the server's log, last lines:\n{last_lines}"
        )

    def _await_ready(self, spec: EndpointSpec, process: subprocess.Popen[bytes]) -> str | None:
        """None once `/readyz` answers; else why the server will never be ready, as soon as
        that shows: a worker refused the revision, a worker exited before the server was
        ready, the server exited, or `ready_timeout_seconds` passed."""
        refusal = refusal_path(self.root / spec.name, spec.revision)
        workers = _Workers(process.pid)
        deadline = time.monotonic() + self.config.ready_timeout_seconds
        while time.monotonic() < deadline:
            if refusal.is_file():
                workers.wait_for_exit(10.0)  # so that BentoML's own lines reach the log
                return _first_line(refusal)
            if process.poll() is not None:
                return f"the server exited (code {process.returncode})"
            if workers.one_exited():
                if refusal.is_file():  # written just before the worker exited
                    return _first_line(refusal)
                return "a worker exited before the server was ready"
            if get_status(f"{spec.url}/readyz") == 200:
                return None
            time.sleep(0.25)
        return f"not ready after {self.config.ready_timeout_seconds:g} s (ready_timeout_seconds)"

    def wait_for_revision(self, spec: EndpointSpec, *, loading: bool) -> None:
        """Until every worker of the server has put `spec.revision` (or a later one) in force
        (acks.py): each looks at the file every 0.1 s. A revision that loads versions
        (`loading`) may take `ready_timeout_seconds`, as may a worker still starting; a split
        alone takes `split_ack_seconds` times the machine's load per core (at least 1).
        A worker that refuses the revision, a server that stops, or the wait running out
        (SplitNotAcknowledged, naming the workers that did not answer) raise StackError with
        the reason and the server log's last lines."""
        folder = self.root / spec.name
        refusal = refusal_path(folder, spec.revision)
        offset = _size(folder / LOG_FILE)
        began = time.monotonic()
        split_s = self.config.split_ack_seconds * load_factor()
        server = self.pid(spec.name)
        expected = family.worker_count(server) if server is not None else 1
        error: type[StackError] = StackError
        while True:
            if refusal.is_file():
                failure = _first_line(refusal)
                break
            if server is None or not self.running(spec.name):
                failure = "the server stopped"
                break
            workers = family.workers(server)
            waiting = not_acknowledged(folder, workers, spec.revision)
            if len(workers) >= expected and not waiting:
                return
            starting = len(workers) < expected or any(read_ack(folder, p) is None for p in waiting)
            waited = time.monotonic() - began
            if waited >= (self.config.ready_timeout_seconds if loading or starting else split_s):
                error = SplitNotAcknowledged
                missing = expected - len(workers)
                failure = _unacknowledged(folder, waiting, missing, waited)
                break
            time.sleep(0.05)
        time.sleep(0.5)  # the worker's own lines after a refusal
        raise error(
            f"endpoint {spec.name!r} did not take revision {spec.revision}: {failure}\n"
            f"--- the server's log, last lines:\n{tail(folder / LOG_FILE, offset=offset)}"
        )


def _unacknowledged(folder: Path, waiting: list[int], missing: int, waited: float) -> str:
    """Why the wait ended: the workers that did not put the revision in force (and what
    each serves), and how many the server should run but does not."""
    named = []
    for pid in waiting:
        ack = read_ack(folder, pid)
        serves = f"serves revision {ack.revision}" if ack is not None else "serves none yet"
        named.append(f"worker pid {pid} ({serves})")
    if missing > 0:
        named.append(f"{missing} worker(s) not running")
    return f"split not acknowledged after {waited:.1f} s: {', '.join(named)}"


def fresh_metrics_dir(folder: Path) -> Path:
    """`folder/metrics`, emptied: prometheus_client's multiprocess files of a server that
    ran before would be summed into the new one's (its documentation: wipe at start).
    Metrics are optional: a folder that cannot be made is still named, and each worker
    serves with its metrics off, saying so in the server log (metrics.py)."""
    directory = (folder / "metrics").resolve()
    shutil.rmtree(directory, ignore_errors=True)
    with contextlib.suppress(OSError):  # the workers say why; /metrics answers 503
        directory.mkdir(parents=True)
    return directory


def get_status(url: str) -> int | None:
    import httpx

    try:
        return httpx.get(url, timeout=2.0).status_code
    except httpx.HTTPError:
        return None


def get_json(url: str, timeout: float = 2.0) -> dict[str, Any]:
    """The JSON `url` answers; {} when it answers nothing readable."""
    import httpx

    try:
        data: dict[str, Any] = httpx.get(url, timeout=timeout).json()
        return data
    except (httpx.HTTPError, ValueError):
        return {}


def free_port(
    root: Path, config: BentoConfig, endpoint: str, previous: EndpointSpec | None = None
) -> int:
    """For a new server of `endpoint`: the port it had (its processes stopped), if free;
    else the first free one from the configured port that no other endpoint under `root`
    holds. Call it under `port_lock(root)` until the spec holding the port is written:
    two deploys at once would otherwise both take the first free port."""
    taken = {read_spec(p).port for p in root.glob(f"*/{SPEC_FILE}") if p.parent.name != endpoint}
    had = previous.port if previous is not None else None
    if had is not None and had not in taken and _bindable(config.host, had):
        return had
    port = config.port
    while port in taken or not _bindable(config.host, port):
        port += 1
    return port


def port_lock(root: Path) -> contextlib.AbstractContextManager[None]:
    """Ports are chosen one deploy at a time under `root` (held from choosing the port to
    writing the spec that holds it; no endpoint's own `.<name>.lock` can be `ports.lock`)."""
    return flocked(root / "ports.lock")


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        # as the server binds (circus): connections in TIME_WAIT do not hold the port
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def tail(path: Path, lines: int = 30, *, offset: int = 0) -> str:
    """The last `lines` lines of the log from byte `offset` on."""
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
    except OSError as exc:
        return f"(no server log: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(the server wrote nothing)"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _first_line(path: Path) -> str:
    try:
        return path.read_text(errors="replace").partition("\n")[0]
    except OSError:
        return "a worker refused the revision"


class _Workers:
    """The server's worker processes (its children, Linux /proc): whether one exited. A
    worker that fails to start exits, and BentoML's arbiter starts another, forever."""

    def __init__(self, server: int) -> None:
        self.server = server
        self.seen: set[int] = set()

    def one_exited(self) -> bool:
        """Whether a process once seen as a worker is gone (or a zombie). Other children of
        the server (short-lived helpers of its arbiter) are not workers: one of those coming
        and going between two looks is no failed start."""
        workers = set(family.workers(self.server))  # living workers only
        gone = bool(self.seen - workers)
        self.seen |= workers
        return gone

    def wait_for_exit(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.one_exited():
            time.sleep(0.1)


def kill_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:  # once reaped, its pid may be another process's
        _kill_tree(process.pid)
        process.poll()  # reaped by _kill_tree: settles the Popen


def _kill_tree(pid: int) -> None:
    """Kill a server that never served (no graceful shutdown to wait for) and every process
    below it. Each is stopped first, until no new one appears, so that none can start
    another (the arbiter restarts workers) between the listing and the kill."""
    seen: list[int] = []
    members = [pid]
    while members:
        for member in members:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(member, signal.SIGSTOP)
        seen.extend(members)
        members = [p for p in family.descendants(pid) if p not in seen]
    for member in seen:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(member, signal.SIGKILL)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and any(alive(p) and not family.zombie(p) for p in seen):
        time.sleep(0.05)
    alive(pid)  # reap the server, our child
