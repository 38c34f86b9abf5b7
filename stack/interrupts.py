"""Ctrl-C (and SIGTERM) that is never lost.

Python raises KeyboardInterrupt wherever the main thread happens to be. When that is inside a
finalizer or a weakref callback (a garbage-collection pass through SQLAlchemy's class
registry, say), Python prints "Exception ignored" and carries on, and a run would go on as if
nothing had been pressed. The CLI's handler therefore also records the request, and the step
executor (and a step that cleans up after itself) re-raise it at the next safe point.

SIGTERM (`kill`, a CI runner cancelling a job, a container stopping) is handled the same way,
as `Terminated` (a KeyboardInterrupt): the run is recorded failed at the step it stopped in
and can be resumed, where Python's default would end the process with the run still
`running` in the spine until its lease ran out."""

from __future__ import annotations

import signal
import threading
from types import FrameType

_requested: dict[int, threading.Event] = {
    signal.SIGINT: threading.Event(),
    signal.SIGTERM: threading.Event(),
}


class Terminated(KeyboardInterrupt):
    """The process was sent SIGTERM: stopped as Ctrl-C stops it."""


def install() -> None:
    """Record every Ctrl-C and SIGTERM, then raise KeyboardInterrupt (`Terminated` for
    SIGTERM) as Python's own Ctrl-C handler does."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _handler)
        signal.signal(signal.SIGTERM, _handler)


def _handler(signum: int, frame: FrameType | None) -> None:
    _requested[signum].set()
    raise _interrupt(signum)


def _interrupt(signum: int) -> KeyboardInterrupt:
    return Terminated("SIGTERM") if signum == signal.SIGTERM else KeyboardInterrupt()


def check() -> None:
    """Raise KeyboardInterrupt (`Terminated`) if Ctrl-C was pressed (SIGTERM received) and
    its exception was swallowed."""
    for signum, event in _requested.items():
        if event.is_set():
            raise _interrupt(signum)


def requested() -> bool:
    return any(event.is_set() for event in _requested.values())
