"""File locks between the processes that share one stack home (deploys, rollouts, imports)."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def flocked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on the file `path` for the block, across processes; waits
    for another holder. The kernel drops it when its holder dies: a crash never leaves it
    held."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
