"""Flush every live tracker at interpreter exit and on SIGTERM, so a politely killed training
script loses no metric it logged."""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import weakref
from types import FrameType
from typing import Any, Protocol


class Flushable(Protocol):
    def shutdown(self, status: str) -> None: ...


_live: weakref.WeakSet[Any] = weakref.WeakSet()
_installed = False
_previous_sigterm: Any = None


def watch(tracker: Flushable) -> None:
    """Make sure `tracker` is flushed when the process ends."""
    global _installed
    _live.add(tracker)
    if _installed:
        return
    _installed = True
    atexit.register(_at_exit)
    if threading.current_thread() is threading.main_thread():
        global _previous_sigterm
        _previous_sigterm = signal.signal(signal.SIGTERM, _on_sigterm)


def _shutdown_all(status: str) -> None:
    for tracker in list(_live):
        try:
            tracker.shutdown(status)
        except Exception as exc:  # keep going: the other trackers must still flush
            print(f"mlstack: could not flush a tracker at exit: {exc}", file=sys.stderr)


def _at_exit() -> None:
    # The default excepthook sets sys.last_type when an exception ended the program.
    _shutdown_all("FAILED" if hasattr(sys, "last_type") else "FINISHED")


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _shutdown_all("KILLED")
    _live.clear()  # already flushed; atexit has nothing left to do
    previous = _previous_sigterm
    if previous is signal.SIG_IGN:
        return
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
