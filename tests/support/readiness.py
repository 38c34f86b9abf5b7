"""Waiting on an endpoint's `/readyz` to say it is degraded (or no longer is)."""

from __future__ import annotations

import time

import httpx


def readyz_until(client: httpx.Client, url: str, *, degraded: bool) -> httpx.Response:
    """`/readyz` once it says degraded (or no longer does): a worker's log writer finds out
    at its next flush (every `log_flush_seconds`)."""
    deadline = time.monotonic() + 30
    while True:
        ready = client.get(f"{url}/readyz")
        if (ready.headers.get("x-mlstack-status") == "degraded") == degraded:
            return ready
        assert time.monotonic() < deadline, f"/readyz never turned degraded={degraded}"
        time.sleep(0.1)
