"""A lean HTTP/1.1 load generator: keep-alive connections on asyncio, pre-encoded requests.

A general client (httpx, aiohttp) spends more CPU per request than the servers measured here;
this one writes bytes and reads `Content-Length` bodies, so that the server is the bottleneck.
Load is bounded: a fixed number of connections for a fixed time."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class LoadResult:
    requests: int
    failures: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds


def request_bytes(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in headers.items()),
        "",
        "",
    ]
    return "\r\n".join(lines).encode() + body


async def _worker(
    host: str, port: int, payload: bytes, until: float, latencies: list[float], failed: list[int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            latencies.append((time.perf_counter() - started) * 1000)
            if status != 200:
                failed.append(status)
    finally:
        writer.close()


def drive(
    host: str,
    port: int,
    path: str,
    body: bytes,
    *,
    connections: int,
    seconds: float,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    payload = request_bytes(host, port, path, body, headers or {})
    latencies: list[float] = []
    failed: list[int] = []

    async def run() -> float:
        started = time.perf_counter()
        until = started + seconds
        await asyncio.gather(
            *(_worker(host, port, payload, until, latencies, failed) for _ in range(connections))
        )
        return time.perf_counter() - started

    elapsed = asyncio.run(run())
    cuts = (
        statistics.quantiles(latencies, n=100, method="inclusive")
        if len(latencies) > 1
        else [0.0] * 99
    )
    return LoadResult(len(latencies), len(failed), elapsed, cuts[49], cuts[98])
