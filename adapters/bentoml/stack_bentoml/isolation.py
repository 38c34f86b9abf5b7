"""Challengers in processes of their own, called without blocking the worker.

The champion (the version the endpoint file names as such, else the heaviest) runs inside
the worker; every other version — a canary, an A/B arm, a shadow, a canary at 100% until its
promotion completes — runs in a child process the worker talks to over a pipe. A call never
blocks the worker's event loop: requests are numbered and handed to a sender thread, a
reader thread settles each answer's future, and the request path awaits it with a deadline
(the plan's latency budget). An answer later than that is a miss (`DeadlineMissed`): the
champion answers instead and the miss counts against the challenger. The child skips a
request whose deadline passed before it got to it, and at most `max_in_flight` requests wait
on a challenger (`ChallengerBusy` past that), so a stalled challenger costs the worker a
bounded queue, never its throughput.

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
import queue
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

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


def _serve(spec_json: str, connection: Connection, pid_dir: str) -> None:  # in the child
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
        while True:
            try:
                message = connection.recv()
            except EOFError:
                return
            if message is None:  # closed by the worker: everything sent before is answered
                return
            number, expires, rows = message
            if time.monotonic() > expires:  # its caller has moved on: no work for nobody
                connection.send((number, "expired", None))
                continue
            try:
                connection.send((number, "ok", version.predict(rows)))
            except Exception as exc:  # with its traceback: the worker logs it, not ours
                detail = "".join(traceback.format_exception(exc))
                failure = f"{type(exc).__name__}: {exc}\n\nin {spec.ref}'s process:\n{detail}"
                connection.send((number, "error", failure))
    finally:
        pid_file.unlink(missing_ok=True)


#: what the sender passes on to tell the child to exit (see `_Channel.close`)
_CLOSE = object()

#: how a request's answer reaches its caller: (status, value), status one of "ok",
#: "expired", "error", "died"; called from the reader thread (or whoever fails the channel)
Deliver = Callable[[str, Any], object]


@dataclass(eq=False)
class _Channel:
    """The worker's end of one challenger: numbered requests out, answers matched back.

    A request waits under its number with the function that delivers its answer: for a
    caller on the event loop that schedules the settling of its asyncio future on the loop
    (one `call_soon_threadsafe` per answer); for a thread, it settles a concurrent future."""

    ref: str
    connection: Connection
    max_in_flight: int
    waiting: dict[int, Deliver] = field(default_factory=dict)
    outbox: queue.SimpleQueue[tuple[int, float, Rows] | object | None] = field(
        default_factory=queue.SimpleQueue
    )
    numbers: itertools.count[int] = field(default_factory=itertools.count)
    lock: threading.Lock = field(default_factory=threading.Lock)
    died: str | None = None

    def start(self) -> None:
        for target, role in ((self._send, "send"), (self._read, "read")):
            name = f"challenger-{role}-{self.ref}"
            threading.Thread(target=target, name=name, daemon=True).start()

    def submit(self, rows: Rows, deadline: float, deliver: Deliver) -> int:
        """Send `rows` to the challenger, its answer to `deliver`; `deadline` in
        `time.monotonic()` seconds (the clock is the machine's, shared with the child).
        Returns the request's number (for `forget`). Fails at once, without waiting, when
        the process is gone or `max_in_flight` requests already wait on it."""
        with self.lock:
            if self.died is not None:
                raise ChallengerDied(f"{self.ref}: its process has exited ({self.died})")
            if len(self.waiting) >= self.max_in_flight:
                raise ChallengerBusy(
                    f"{self.ref}: {len(self.waiting)} requests already wait on its process"
                )
            number = next(self.numbers)
            self.waiting[number] = deliver
        self.outbox.put((number, deadline, rows))
        return number

    def close(self) -> None:
        """Tell the process to exit once it has answered every request sent before; later
        calls fail at once (`ChallengerDied`) when it is gone."""
        self.outbox.put(_CLOSE)

    def _send(self) -> None:
        while (item := self.outbox.get()) is not None:
            try:
                self.connection.send(None if item is _CLOSE else item)
            except (OSError, ValueError) as exc:
                self._fail_all(f"cannot write to it: {exc}")
                return
            if item is _CLOSE:
                return

    def _read(self) -> None:
        while True:
            try:
                number, status, value = self.connection.recv()
            except (EOFError, OSError) as exc:
                self._fail_all(str(exc) or type(exc).__name__)
                return
            with self.lock:
                deliver = self.waiting.pop(number, None)
            if deliver is not None:  # else given up on (its deadline passed)
                _deliver(deliver, status, value)

    def _fail_all(self, why: str) -> None:
        with self.lock:
            self.died = why
            waiting, self.waiting = self.waiting, {}
        self.outbox.put(None)
        for deliver in waiting.values():
            _deliver(deliver, "died", why)

    def forget(self, number: int) -> None:
        """Stop counting a request its caller gave up on (its answer will be dropped)."""
        with self.lock:
            self.waiting.pop(number, None)

    def settle(self, future: asyncio.Future[Rows] | Future[Rows], status: str, value: Any) -> None:
        """Settle `future` with an answer as `Deliver` gives it (unless its caller has
        already given up on it: cancelled, or missed its deadline)."""
        if future.done():
            return
        with contextlib.suppress(InvalidStateError, asyncio.InvalidStateError):
            if status == "ok":
                future.set_result(value)
            elif status == "expired":
                future.set_exception(DeadlineMissed(f"{self.ref}: answered too late"))
            elif status == "died":
                future.set_exception(
                    ChallengerDied(f"{self.ref}: its process has exited ({value})")
                )
            else:
                future.set_exception(RuntimeError(value))


def _deliver(deliver: Deliver, status: str, value: Any) -> None:
    with contextlib.suppress(RuntimeError):  # the caller's loop is closed: nobody waits
        deliver(status, value)


@dataclass(frozen=True, slots=True)
class IsolatedVersion(LoadedVersion):
    """A version in a process of its own: `answer` awaits it with a deadline; `predict`
    (for threads, such as the shadow writer) blocks its caller up to THREAD_TIMEOUT_S."""

    channel: _Channel | None = None
    process: BaseProcess | None = None

    def close(self, grace_s: float) -> None:
        """End the process: after `grace_s` seconds (requests still routed to it by a
        revision just replaced finish first), it answers what it was sent and exits; killed
        if it has not within a further 10 s (a call stuck in the model). Returns at once."""

        def end() -> None:
            assert self.channel is not None and self.process is not None
            time.sleep(grace_s)
            self.channel.close()
            self.process.join(10)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(5)

        threading.Thread(target=end, name=f"challenger-close-{self.ref}", daemon=True).start()

    async def answer(self, rows: Rows, deadline_s: float) -> Rows:
        """The challenger's answer to `rows`, or DeadlineMissed after `deadline_s` seconds
        (ChallengerDied / ChallengerBusy / the model's own error at once). Never blocks the
        event loop: the answer is settled on the loop, the deadline is a timer of the loop."""
        channel = self.channel
        assert channel is not None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Rows] = loop.create_future()

        def deliver(status: str, value: Any) -> None:  # from the reader thread
            loop.call_soon_threadsafe(channel.settle, future, status, value)

        number = channel.submit(rows, time.monotonic() + deadline_s, deliver)
        timer = loop.call_later(deadline_s, _miss, future, self.ref, deadline_s)
        try:
            return await future
        finally:  # answered, missed or cancelled: its timer and its place in the queue go
            timer.cancel()
            channel.forget(number)


def _miss(future: asyncio.Future[Rows], ref: str, deadline_s: float) -> None:
    if not future.done():
        future.set_exception(
            DeadlineMissed(f"{ref} did not answer within its deadline of {deadline_s * 1000:g} ms")
        )


def load_isolated(
    spec: VersionSpec, pid_dir: Path, timeout: float = 300.0, *, max_in_flight: int = 64
) -> IsolatedVersion:
    """Start the child, wait until its model is loaded, and return the version that calls it."""
    parent, child = _CONTEXT.Pipe()
    process = _CONTEXT.Process(
        target=_serve, args=(spec.model_dump_json(), child, str(pid_dir)), daemon=True
    )
    process.start()
    child.close()
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
    channel = _Channel(spec.ref, parent, max_in_flight)
    channel.start()

    def predict(rows: Rows) -> Rows:  # from a thread (the shadow writer), never the loop
        future: Future[Rows] = Future()
        deliver = partial(channel.settle, future)
        number = channel.submit(rows, time.monotonic() + THREAD_TIMEOUT_S, deliver)
        try:
            return future.result(THREAD_TIMEOUT_S)
        except TimeoutError:
            raise DeadlineMissed(
                f"{spec.ref} did not answer within {THREAD_TIMEOUT_S:g} s"
            ) from None
        finally:
            channel.forget(number)

    return IsolatedVersion(spec.ref, predict, channel=channel, process=process)
