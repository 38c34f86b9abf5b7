"""A real Redis for the tests: MLSTACK_TEST_REDIS_URL, else 127.0.0.1:6379 when it answers,
else a throwaway `redis-server` on a free loopback port, else skip saying why."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.support.ports import free_port


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def redis_address() -> Iterator[tuple[str, int]]:
    given = os.environ.get("MLSTACK_TEST_REDIS_URL")
    if given:
        host, _, port = given.removeprefix("redis://").partition(":")
        yield host, int(port or 6379)
        return
    if answers("127.0.0.1", 6379):
        yield "127.0.0.1", 6379
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip(
            "no Redis: MLSTACK_TEST_REDIS_URL unset, nothing on 127.0.0.1:6379, "
            "and redis-server is not installed (apt-get install redis-server)"
        )
    port = free_port()
    folder = tempfile.mkdtemp(prefix="mlstack-redis-")
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--dir", folder],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not answers("127.0.0.1", port):
            if time.monotonic() > deadline:
                raise RuntimeError("throwaway redis-server did not answer")
            time.sleep(0.1)
        yield "127.0.0.1", port
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)
