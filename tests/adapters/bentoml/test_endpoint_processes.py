"""An endpoint's processes are one unit, against real `bentoml serve` and real SIGKILLs: what
`mlstack rollout status` says after a process dies, and that a re-deploy or `mlstack
undeploy` leaves exactly the processes it should (by pid and port, as /proc has them)."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest

from stack.contract.serving import TrafficSplit
from stack.errors import StackError
from stack.processes import alive
from tests.adapters.bentoml.conftest import Stack, row
from tests.support.cli import cli_in

ENDPOINT = "unit"


def in_folder(folder: Path) -> dict[int, str]:
    """Pid -> command line of every running process whose working directory is `folder`
    (the server, its workers and their challengers all work in the endpoint's folder)."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = (proc / "cwd").resolve()
            state = (proc / "stat").read_text().rpartition(")")[2].split()[0]
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if cwd == folder.resolve() and state != "Z":
            found[int(proc.name)] = command
    return found


def ended(pid: int) -> bool:
    """Gone, or exited and waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return True
    return state == "Z" or not alive(pid)


def until(condition: object, what: str, limit: float = 120.0) -> None:
    """Wait for a fact (no verdict rests on how long it takes; the limit only ends a hang)."""
    deadline = time.monotonic() + limit
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"never true: {what}"
        time.sleep(0.1)


def live_challenger(folder: Path) -> int | None:
    """The pid of a running challenger, from the pid files challengers write."""
    for pid_file in (folder / "isolated").glob("*.pid"):
        pid = int(pid_file.read_text())
        if not ended(pid):
            return pid
    return None


def refuses(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def status(folder: Path) -> tuple[int, str]:
    result = cli_in(folder)("rollout", "status", ENDPOINT)
    return result.returncode, result.stdout + result.stderr


def test_a_killed_server_is_reported_and_cleared_and_never_doubled(stack: Stack) -> None:
    champion, challenger = stack.versions.champion, stack.versions.challenger
    folder = stack.folder / ".mlstack" / "serving" / ENDPOINT
    seen: set[int] = set()  # killed here, whatever the outcome
    cli_in(stack.folder)("spine", "upgrade", check=True)  # status reads a store that exists
    try:
        with stack.session() as session:
            server = session.server
            first = server.deploy(champion, endpoint=ENDPOINT)
            server.add_version(challenger, endpoint=ENDPOINT)
            server.route(ENDPOINT, TrafficSplit({champion.ref: 0.9, challenger.ref: 0.1}))
            port = int(first.url.rpartition(":")[2])
            parent = int((folder / "server.pid").read_text())
            seen.update(in_folder(folder))
            [worker] = [p for p, cmd in in_folder(folder).items() if "worker.service" in cmd]
            canary = int(next((folder / "isolated").glob("*.pid")).read_text())

            # kill -9 of the server, its worker unable to follow (stopped): an orphan
            os.kill(worker, signal.SIGSTOP)
            os.kill(parent, signal.SIGKILL)
            until(lambda: ended(parent), "the server is gone")

            code, said = status(stack.folder)
            assert code == 1, said
            assert f"{ENDPOINT}  {first.url}  NOT RUNNING" in said
            assert f"server pid {parent} is dead" in said
            assert f"worker pid {worker} (holds :{port})" in said, said
            assert f"challenger pid {canary}" in said, said
            assert f":{port} is held, but nothing answers on it" in said
            with pytest.raises(StackError, match="is not running"):  # not through the orphan
                server.route(ENDPOINT, TrafficSplit({challenger.ref: 1.0}))

            again = server.deploy(champion, endpoint=ENDPOINT)

            assert again.url == first.url, "the re-deploy took the endpoint's own port"
            assert ended(worker) and ended(canary), "the dead server's processes were stopped"
            running = in_folder(folder)
            seen.update(running)
            servers = [p for p, cmd in running.items() if " serve " in f" {cmd} "]
            assert len(servers) == 1 and parent not in running, running
            answer = httpx.post(f"{again.url}/predict", json=row(), timeout=30)
            assert answer.status_code == 200 and answer.json()["model_version"] == champion.ref
            [found] = server.processes(ENDPOINT)
            assert found.running and found.answering == again.revision and not found.problems

            # kill -9 of the worker: BentoML starts another, and its challenger goes with it
            server.add_version(challenger, endpoint=ENDPOINT)
            routed = server.route(ENDPOINT, TrafficSplit({champion.ref: 0.5, challenger.ref: 0.5}))
            [worker] = [p for p, cmd in in_folder(folder).items() if "worker.service" in cmd]
            canary = live_challenger(folder)
            seen.update(in_folder(folder))
            os.kill(worker, signal.SIGKILL)
            until(lambda: ended(canary), "the challenger exits with its worker")
            until(
                lambda: (
                    live_challenger(folder) not in (None, canary)
                    and server.processes(ENDPOINT)[0].answering == routed.revision
                ),
                "a new worker and challenger serve the revision",
            )
            [found] = server.processes(ENDPOINT)
            assert found.running and not found.problems, found
            assert worker not in in_folder(folder) and canary not in in_folder(folder)
            seen.update(in_folder(folder))

            # kill -9 of a challenger: the champion answers its share, and status says so
            canary = live_challenger(folder)
            assert canary is not None
            os.kill(canary, signal.SIGKILL)
            until(lambda: ended(canary), "the challenger is gone")
            answers = [httpx.post(f"{again.url}/predict", json=row(), timeout=30) for _ in range(8)]
            assert {a.status_code for a in answers} == {200}
            code, said = status(stack.folder)
            assert code == 0, said
            assert f"challenger {challenger.ref} (pid {canary}) is dead" in said, said

            # kill -9 of the server alone: its worker ends by itself, freeing the port; a
            # helper of the worker that cannot follow (stopped) is left over
            members = in_folder(folder)
            seen.update(members)
            [new_worker] = [p for p, cmd in members.items() if "worker.service" in cmd]
            [helper] = [p for p, cmd in members.items() if "resource_tracker" in cmd]
            os.kill(helper, signal.SIGSTOP)
            os.kill(servers[0], signal.SIGKILL)
            until(lambda: ended(new_worker), "the worker exits with its server")
            assert refuses(port)
            code, said = status(stack.folder)
            assert code == 1 and f"server pid {servers[0]} is dead" in said, said
            assert f":{port} answers nothing; processes: helper {helper} LEFT OVER" in said
            audited = len(session.spine.audit_entries(action="endpoint.undeployed"))

            undeployed = cli_in(stack.folder)("undeploy", ENDPOINT)

            assert undeployed.returncode == 0, undeployed.stdout + undeployed.stderr
            assert f"stopped what the dead server of {ENDPOINT} left: helper pid {helper}" in (
                undeployed.stdout
            )
            assert in_folder(folder) == {} and not folder.exists() and ended(helper)
            assert refuses(port)
            entries = session.spine.audit_entries(action="endpoint.undeployed")
            assert len(entries) == audited + 1 and f"helper pid {helper}" in entries[-1].reason
    finally:
        for pid in seen | set(in_folder(folder)):
            if not ended(pid):
                os.kill(pid, signal.SIGKILL)
