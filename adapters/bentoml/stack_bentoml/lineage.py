"""A served process ends with the one that started it.

BentoML's arbiter starts each worker in a session of its own, so a `bentoml serve` killed
with SIGKILL (no chance to stop them) used to leave its worker answering on the endpoint's
port for good. A worker now asks the kernel for SIGTERM when its server dies (Linux
`prctl(PR_SET_PDEATHSIG)`): it shuts down as on `mlstack undeploy`, writing what its
prediction log holds. A challenger (isolation.py) watches its worker instead: the kernel's
signal follows the thread that started a process, and a worker starts challengers from a
thread that ends before the worker does. Whatever survives anyway (a stopped process, one
stuck in the kernel) is found and stopped by `mlstack undeploy` or a re-deploy (family.py)."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1


def exit_with_parent(signum: int = signal.SIGTERM) -> bool:
    """Have `signum` sent to this process when its parent process dies; sent at once when
    the parent died already. False where the kernel offers no such thing (not Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent:  # it died before the request took effect
        os.kill(os.getpid(), signum)
    return True


def watch_parent(interval: float = 0.5) -> None:
    """End this process (exit status 0, nothing flushed) once its parent is gone: a daemon
    thread compares the parent's pid every `interval` seconds."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
