"""Free loopback ports for the servers the tests start, safe when pytest-xdist runs several
workers at once.

A port the kernel hands out for `bind(0)` comes from the ephemeral range, the same range every
outgoing connection takes its local port from: between the moment a test picks it and the
moment its server binds it, a client connection (thousands in a load test) or another worker
may take it. These ports come instead from below the ephemeral range, from a block of its own
for each xdist worker, and are checked free when picked."""

from __future__ import annotations

import os
import random
import socket

_LOW, _HIGH = 15000, 32000  # under Linux's default ephemeral range (32768-60999)
_BLOCK = 1400  # ports per worker: 12 workers before blocks are shared
_SLOT = 20  # ports per pick: a stack's later endpoints take the next free ports above it


def worker_index() -> int:
    """This xdist worker's number (gw3 -> 3); 0 outside xdist."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    digits = name.removeprefix("gw")
    return int(digits) if digits.isdigit() else 0


def bindable(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port free on 127.0.0.1 now: the first of a slot of this worker's block, at random
    (so that a server a previous test stopped is not raced for its port, and the endpoints a
    stack adds on the ports above its own stay clear of another pick's)."""
    blocks = (_HIGH - _LOW) // _BLOCK
    start = _LOW + (worker_index() % blocks) * _BLOCK
    for _ in range(200):
        port = start + random.randrange(_BLOCK // _SLOT) * _SLOT
        if bindable(port):
            return port
    raise RuntimeError(f"no free port in {start}-{start + _BLOCK}")
