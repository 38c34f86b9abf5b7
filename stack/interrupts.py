"""Ctrl-C that is never lost.

Python raises KeyboardInterrupt wherever the main thread happens to be. When that is inside a
finalizer or a weakref callback (a garbage-collection pass through SQLAlchemy's class
registry, say), Python prints "Exception ignored" and carries on, and a run would go on as if
nothing had been pressed. The CLI's handler therefore also records the request, and the step
executor (and a step that cleans up after itself) re-raise it at the next safe point."""

from __future__ import annotations

import signal
import threading
from types import FrameType

_requested = threading.Event()


def install() -> None:
    """Record every Ctrl-C, then raise KeyboardInterrupt as Python's own handler does."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _handler)


def _handler(signum: int, frame: FrameType | None) -> None:
    _requested.set()
    raise KeyboardInterrupt


def check() -> None:
    """Raise KeyboardInterrupt if Ctrl-C was pressed and its exception was swallowed."""
    if _requested.is_set():
        raise KeyboardInterrupt


def requested() -> bool:
    return _requested.is_set()
