"""Challengers in processes of their own, called without blocking the worker.

The champion (the version the endpoint file names as such, else the heaviest) runs inside
the worker; every other version — a canary, an A/B arm, a shadow, a canary at 100% until its
promotion completes — runs in a child process the worker talks to over two socket pairs.

Requests from the event loop go over the first, which the loop itself drives (`_LoopChannel`,
an asyncio protocol): a request is framed and written by the loop's transport (buffered,
never blocking), the answer read when the loop polls, its future settled there, with no
thread in between — a thread woken for each answer waits for the interpreter lock while the
loop serves other requests, and a 10% canary so cost the endpoint a fifth of its requests/s
at 8 connections (bench/serving.py). The request path awaits the answer with a deadline (the
plan's latency budget): an answer later than that is a miss (`DeadlineMissed`), the champion
answers instead and the miss counts against the challenger. The child skips a request whose
deadline passed before it got to it, and at most `max_in_flight` requests wait on a
challenger (`ChallengerBusy` past that), so a stalled challenger costs the worker a bounded
queue, never its throughput.

Threads (the shadow writer) call over the second pair, one request at a time
(`_ThreadChannel`); the child answers both pairs as requests arrive.

A version the split no longer needs in a process of its own (a challenger promoted, and so
loaded in the worker, or rolled back) is closed: its process answers what it was already
sent, then exits (`IsolatedVersion.close`).

If a challenger's process crashes (a segfault in native code, the OOM killer), its requests
fail at once (`ChallengerDied`) and the champion answers them. Each child writes its pid
under the endpoint's folder, so that an operator (or a test) can find it; it exits when its
worker is gone (lineage.py)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import os
import pickle
import socket
import struct
import threading
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any, cast

from stack_bentoml.lineage import watch_parent
from stack_bentoml.runtime import LoadedVersion, load_version
from stack_bentoml.spec import VersionSpec

_CONTEXT = multiprocessing.get_context("spawn")  # the worker has threads: never fork it
Rows = list[list[Any]]
#: how long a thread (the shadow writer) waits on a challenger's answer
THREAD_TIMEOUT_S = 30.0


class ChallengerDied(RuntimeError):
    """The challenger's process is gone; its requests go to the champion."""


class DeadlineMissed(RuntimeError):
    """The challenger did not answer within its deadline; the champion answers instead."""


class ChallengerBusy(RuntimeError):
    """Too many requests already wait on the challenger; the champion answers this one."""


def _serve(spec_json: str, connection: Connection, calls: Connection, pid_dir: str) -> None:
    """In the child: load the version, say so on `connection`, then answer requests from
    both `connection` (threads) and `calls` (the event loop) until the worker closes it."""
    watch_parent()  # a challenger outliving its worker would hold its model's memory for good
    spec = VersionSpec.model_validate_json(spec_json)
    try:
        version = load_version(spec)
    except Exception as exc:  # so that the worker can say why, not only that it exited
        connection.send(("failed", f"{type(exc).__name__}: {exc}"))
        raise
    pid_file = Path(pid_dir) / f"{spec.ref.replace('@', '-v')}.{os.getpid()}.pid"
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(str(os.getpid()))  # once it serves
    try:
        connection.send(("ready", None))
        open_ = [connection, calls]
        while open_:
            for ready in wait(open_):
                assert isinstance(ready, Connection)
                try:
                    message = ready.recv()
                except EOFError:
                    open_.remove(ready)
                    continue
                if message is None:  # closed by the worker: everything sent before is answered
                    return
                try:
                    ready.send(_answered(spec.ref, version, *message))
                except OSError:  # that end closed (its event loop ended): serve the other
                    open_.remove(ready)
    finally:
        pid_file.unlink(missing_ok=True)


def _answered(
    ref: str, version: LoadedVersion, number: int, expires: float, rows: Rows
) -> tuple[int, str, Any]:
    if time.monotonic() > expires:  # its caller has moved on: no work for nobody
        return number, "expired", None
    try:
        return number, "ok", version.predict(rows)
    except Exception as exc:  # with its traceback: the worker logs it, not ours
        detail = "".join(traceback.format_exception(exc))
        return number, "error", f"{type(exc).__name__}: {exc}\n\nin {ref}'s process:\n{detail}"


def _outcome(ref: str, status: str, value: Any) -> Any:
    """An answer's value, or the exception it stands for."""
    if status == "ok":
        return value
    if status == "expired":
        return DeadlineMissed(f"{ref}: answered too late")
    if status == "died":
        return ChallengerDied(f"{ref}: its process has exited ({value})")
    return RuntimeError(value)


#: The frames of `multiprocessing.connection.Connection`: a 4-byte big-endian length (-1,
#: then an 8-byte one, past 2 GiB), then the pickle; what the child's `recv`/`send` read and
#: write.
_HEADER = struct.Struct("!i")
_LONG_HEADER = struct.Struct("!Q")


def _frame(message: object) -> bytes:
    payload = ForkingPickler.dumps(message)
    if len(payload) > 0x7FFFFFFF:
        return _HEADER.pack(-1) + _LONG_HEADER.pack(len(payload)) + payload
    return _HEADER.pack(len(payload)) + payload


class _LoopChannel(asyncio.Protocol):
    """The event loop's end of a challenger: requests framed and written by the loop's
    transport, answers read and their futures settled by the loop."""

    def __init__(self, ref: str, max_in_flight: int) -> None:
        self.ref = ref
        self.max_in_flight = max_in_flight
        self.waiting: dict[int, asyncio.Future[Rows]] = {}
        self.numbers = itertools.count()
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.died: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a socket's transport (uvloop's does not subclass asyncio's, so no isinstance)
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        while len(buffer) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(buffer)
            start = _HEADER.size
            if size == -1:
                if len(buffer) < start + _LONG_HEADER.size:
                    return
                (size,) = _LONG_HEADER.unpack_from(buffer, start)
                start += _LONG_HEADER.size
            end = start + size
            if len(buffer) < end:
                return
            number, status, value = pickle.loads(bytes(buffer[start:end]))
            del buffer[:end]
            future = self.waiting.pop(number, None)
            if future is not None and not future.done():  # else given up on
                outcome = _outcome(self.ref, status, value)
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    def connection_lost(self, exc: Exception | None) -> None:
        self.died = str(exc) if exc else "the connection to it closed"
        waiting, self.waiting = self.waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(_outcome(self.ref, "died", self.died))

    async def call(self, rows: Rows, deadline_s: float) -> Rows:
        if self.died is not None or self.transport is None or self.transport.is_closing():
            raise ChallengerDied(f"{self.ref}: its process has exited ({self.died})")
        if len(self.waiting) >= self.max_in_flight:
            raise ChallengerBusy(
                f"{self.ref}: {len(self.waiting)} requests already wait on its process"
            )
        loop = asyncio.get_running_loop()
        number = next(self.numbers)
        future: asyncio.Future[Rows] = loop.create_future()
        self.waiting[number] = future
        self.transport.write(_frame((number, time.monotonic() + deadline_s, rows)))
        timer = loop.call_later(deadline_s, _miss, future, self.ref, deadline_s)
        try:
            return await future
        finally:  # answered, missed or cancelled: its timer and its place in the queue go
            timer.cancel()
            self.waiting.pop(number, None)


def _miss(future: asyncio.Future[Rows], ref: str, deadline_s: float) -> None:
    if not future.done():
        future.set_exception(
            DeadlineMissed(f"{ref} did not answer within its deadline of {deadline_s * 1000:g} ms")
        )


@dataclass(eq=False)
class _ThreadChannel:
    """A thread's end of a challenger: one request at a time, answered within its timeout
    (an answer that comes later is dropped by the next call)."""

    ref: str
    connection: Connection
    lock: threading.Lock = field(default_factory=threading.Lock)
    numbers: itertools.count[int] = field(default_factory=itertools.count)
    died: str | None = None

    def call(self, rows: Rows, timeout_s: float) -> Rows:
        with self.lock:
            if self.died is not None:
                raise ChallengerDied(f"{self.ref}: its process has exited ({self.died})")
            number = next(self.numbers)
            expires = time.monotonic() + timeout_s
            try:
                self.connection.send((number, expires, rows))
                while (left := expires - time.monotonic()) > 0 and self.connection.poll(left):
                    answered, status, value = self.connection.recv()
                    if answered == number:
                        outcome = _outcome(self.ref, status, value)
                        if isinstance(outcome, BaseException):
                            raise outcome
                        return outcome  # type: ignore[no-any-return]
            except (EOFError, OSError, ValueError) as exc:
                self.died = str(exc) or type(exc).__name__
                raise ChallengerDied(f"{self.ref}: its process has exited ({self.died})") from None
        raise DeadlineMissed(f"{self.ref} did not answer within {timeout_s:g} s")

    def close(self) -> None:
        """Tell the process to exit once it has answered every request sent before."""
        with self.lock, contextlib.suppress(OSError, ValueError):
            self.connection.send(None)


@dataclass(eq=False)
class _Link:
    """The worker's ends of one challenger process: the thread channel, and the socket the
    event loop adopts on its first call (again, should that loop close and another call)."""

    ref: str
    threads: _ThreadChannel
    calls: Connection
    max_in_flight: int
    loop: asyncio.AbstractEventLoop | None = None
    channel: _LoopChannel | None = None
    attaching: asyncio.Future[_LoopChannel] | None = None

    async def loop_channel(self) -> _LoopChannel | None:
        """This loop's channel to the process; None when another loop, still open, holds
        it (the caller then goes the threads' way)."""
        loop = asyncio.get_running_loop()
        if self.loop is loop:
            if self.channel is not None:
                return self.channel
            assert self.attaching is not None
            return await asyncio.shield(self.attaching)
        if self.loop is not None and not self.loop.is_closed():
            return None
        self.loop, self.channel = loop, None
        self.attaching = loop.create_future()
        try:
            sock = socket.socket(fileno=os.dup(self.calls.fileno()))
            _, channel = await loop.create_unix_connection(
                lambda: _LoopChannel(self.ref, self.max_in_flight), sock=sock
            )
        except BaseException as exc:
            self.attaching.set_exception(exc)
            self.attaching.exception()  # retrieved: the waiters above raise it
            self.loop = None
            raise
        self.channel = channel
        self.attaching.set_result(channel)
        return channel


@dataclass(frozen=True, slots=True)
class IsolatedVersion(LoadedVersion):
    """A version in a process of its own: `answer` awaits it with a deadline; `predict`
    (for threads, such as the shadow writer) blocks its caller up to THREAD_TIMEOUT_S."""

    link: _Link | None = None
    process: BaseProcess | None = None

    def close(self, grace_s: float) -> None:
        """End the process: after `grace_s` seconds (requests still routed to it by a
        revision just replaced finish first), it answers what it was sent and exits; killed
        if it has not within a further 10 s (a call stuck in the model). Returns at once."""

        def end() -> None:
            assert self.link is not None and self.process is not None
            time.sleep(grace_s)
            self.link.threads.close()
            self.process.join(10)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(5)
            self.link.threads.connection.close()
            self.link.calls.close()  # the loop's transport holds a copy of its own

        threading.Thread(target=end, name=f"challenger-close-{self.ref}", daemon=True).start()

    async def answer(self, rows: Rows, deadline_s: float) -> Rows:
        """The challenger's answer to `rows`, or DeadlineMissed after `deadline_s` seconds
        (ChallengerDied / ChallengerBusy / the model's own error at once). Never blocks the
        event loop: the request is written and the answer read by the loop itself, the
        deadline is a timer of the loop."""
        assert self.link is not None
        channel = await self.link.loop_channel()
        if channel is None:  # another loop holds the socket: a thread's call, awaited
            call = self.link.threads.call
            return await asyncio.wait_for(asyncio.to_thread(call, rows, deadline_s), deadline_s)
        return await channel.call(rows, deadline_s)


def load_isolated(
    spec: VersionSpec, pid_dir: Path, timeout: float = 300.0, *, max_in_flight: int = 64
) -> IsolatedVersion:
    """Start the child, wait until its model is loaded, and return the version that calls it."""
    parent, child = _CONTEXT.Pipe()
    calls, child_calls = _CONTEXT.Pipe()
    process = _CONTEXT.Process(
        target=_serve,
        args=(spec.model_dump_json(), child, child_calls, str(pid_dir)),
        daemon=True,
    )
    process.start()
    child.close()
    child_calls.close()
    if not parent.poll(timeout):
        process.kill()
        raise RuntimeError(f"{spec.ref}: its process did not load the model in {timeout:g} s")
    try:
        status, detail = parent.recv()
    except EOFError:
        status, detail = "exited", None
    if status != "ready":
        process.join(5)
        raise RuntimeError(f"{spec.ref}: its process failed to load the model ({detail or status})")
    threads = _ThreadChannel(spec.ref, parent)
    link = _Link(spec.ref, threads, calls, max_in_flight)

    def predict(rows: Rows) -> Rows:  # from a thread (the shadow writer), never the loop
        return threads.call(rows, THREAD_TIMEOUT_S)

    return IsolatedVersion(spec.ref, predict, link=link, process=process)
