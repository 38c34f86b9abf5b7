"""Files written whole or not at all: a reader sees the old file or the new one, never part.

Each write goes to a hidden temporary file beside the target (`.NAME.PID.THREAD.partial`:
a name that parquet datasets, Prometheus' textfile collector and `*.json` or `*.parquet`
globs skip), which `os.replace` then puts in place (atomic on POSIX within one file
system). The temporary file is removed when the write fails; a process killed mid-write
leaves at most that hidden file. Files get the umask's mode, as `open` gives them."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path to write `path`'s new content to; it becomes `path` when the block
    ends without an exception, and is removed otherwise. Raises OSError from the rename."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write `data` (text as UTF-8) to `path` whole or not at all; raises OSError."""
    with atomic_path(path) as partial:
        if isinstance(data, str):
            partial.write_text(data, encoding="utf-8")
        else:
            partial.write_bytes(data)
