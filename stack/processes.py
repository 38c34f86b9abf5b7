"""Processes the stack starts and leaves running (endpoints, the local generator)."""

from __future__ import annotations

import contextlib
import os


def alive(pid: int) -> bool:
    """Whether `pid` runs; a child of ours that exited is reaped (else it would linger as a
    zombie and look alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True
