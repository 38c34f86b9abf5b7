"""Finding and stopping an endpoint's processes (family.py) among real processes, without a
server: those carrying the endpoint's marker, those in their sessions, and whoever holds the
port, of which only the endpoint's own are ever signalled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack_bentoml import family
from tests.adapters.bentoml.conftest import free_port

# Listens on the port given (SO_REUSEPORT, so that two processes can), says so, then waits.
LISTENER = """
import socket, sys, time
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
sock.bind(("127.0.0.1", int(sys.argv[1])))
sock.listen()
print("listening", flush=True)
time.sleep(600)
"""
# Starts a child with an empty environment (no marker) in its own session, then waits.
PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], env={})
print(child.pid, flush=True)
time.sleep(600)
"""


def started(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """The process, once it printed its first line; and that line."""
    process = subprocess.Popen(
        [sys.executable, "-c", *args],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def gone(pid: int) -> bool:
    return family.zombie(pid)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started_here: list[subprocess.Popen[str]] = []
    yield started_here
    for process in started_here:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_members_are_found_by_marker_session_and_port_and_strangers_are_never_signalled(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    spec = tmp_path / "serving" / "unit" / "endpoint.json"
    port = free_port()
    marked = {**os.environ, family.SPEC_ENV: str(spec)}
    other = {**os.environ, family.SPEC_ENV: str(tmp_path / "serving" / "other" / "endpoint.json")}
    ours, _ = started([LISTENER, str(port)], marked)
    stranger, _ = started([LISTENER, str(port)], other)
    parent, child = started([PARENT], marked)
    processes.extend([ours, stranger, parent])
    unmarked_child = int(child)

    found = family.find(spec, port)

    members = {m.pid: m for m in found.members}
    assert set(members) == {ours.pid, parent.pid, unmarked_child}
    assert members[ours.pid].listening and not members[parent.pid].listening
    assert found.strangers == (stranger.pid,)
    assert found.port_held
    assert found.below(parent.pid) == {parent.pid, unmarked_child}
    assert {m.pid for m in found.strays(parent.pid)} == {ours.pid}

    os.kill(ours.pid, signal.SIGSTOP)  # a stopped process cannot act on SIGTERM alone
    left = family.stop(found, server=None, graceful=10.0)

    assert left == []
    assert gone(ours.pid) and gone(parent.pid) and gone(unmarked_child)
    assert stranger.poll() is None, "a process that is not the endpoint's was signalled"
    after = family.find(spec, port)
    assert after.members == () and after.strangers == (stranger.pid,)


def test_a_reused_server_pid_is_not_taken_for_the_endpoints(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    """The recorded server pid now names a process without the marker (the pid was freed
    and reused): neither it nor its session is the endpoint's, and stopping leaves it."""
    spec = tmp_path / "serving" / "unit" / "endpoint.json"
    unrelated, _ = started([PARENT], {**os.environ})
    processes.append(unrelated)

    found = family.find(spec, free_port())

    assert found.members == ()
    assert family.stop(found, unrelated.pid, graceful=1.0) == []
    assert unrelated.poll() is None
