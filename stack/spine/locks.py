"""Named locks shared by every process that uses one spine: one holder at a time per name.

PostgreSQL: a session-level advisory lock (keyed by a 64-bit digest of the name) on a
connection kept for the hold. SQLite: an exclusive `flock` on a file beside the database
(`<database>.locks/<digest>.lock`), so holders of other names, and the spine's own writers,
are never blocked; an in-memory database, which no other process can open, uses a lock of
this process. Every kind is released when its holder dies (the server ends a dead client's
session and its locks, the kernel drops a dead process's flocks): a crash never leaves a name
locked. A thread that already holds a name may take it again (nested holds are free).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

from stack.errors import LockTimeout
from stack.spine.engine import is_postgresql

#: How long a process waits for another's hold before it gives up (seconds). Holds last as
#: long as one promotion (a gate decision and a registry write): seconds.
LOCK_WAIT_S = 300.0

_PROCESS_LOCKS: dict[str, threading.Lock] = {}
_PROCESS_LOCKS_GUARD = threading.Lock()
_HELD = threading.local()


class NamedLocks:
    """The named locks of one spine (`SpineStore.locks`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._database = engine.url.render_as_string(hide_password=False)

    @contextmanager
    def hold(self, name: str, *, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
        """Hold `name` for the block, waiting up to `wait_s` seconds for another holder.

        Raises LockTimeout (naming the lock) when the wait runs out; nothing was done then.
        """
        # Held by this thread through any store on this database (a hook may open its own).
        held: set[tuple[str, str]] = _HELD.__dict__.setdefault("names", set())
        key = (self._database, name)
        if key in held:
            yield
            return
        acquire = self._advisory if is_postgresql(self.engine) else self._file_or_process
        with acquire(name, wait_s):
            held.add(key)
            try:
                yield
            finally:
                held.discard(key)

    @contextmanager
    def _advisory(self, name: str, wait_s: float) -> Iterator[None]:
        key = _key(name)
        with self.engine.connect() as connection:
            try:
                with connection.begin():  # lock_timeout for this wait only (0 would be none)
                    wait_ms = max(1, int(wait_s * 1000))
                    connection.execute(text(f"SET LOCAL lock_timeout = {wait_ms}"))
                    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            except OperationalError as exc:
                if getattr(exc.orig, "sqlstate", None) == "55P03":  # lock_not_available
                    raise _timeout(name, wait_s) from None
                raise
            try:
                yield
            finally:
                _advisory_unlock(connection, key)

    @contextmanager
    def _file_or_process(self, name: str, wait_s: float) -> Iterator[None]:
        database = self.engine.url.database
        if not database or database == ":memory:":
            with _process_lock(name, wait_s):
                yield
            return
        folder = Path(f"{database}.locks")
        folder.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(folder / f"{_digest(name)}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _flock(descriptor, name, wait_s)
            try:
                yield
            finally:
                fcntl.flock(descriptor, fcntl.LOCK_UN)
        finally:
            os.close(descriptor)


def _advisory_unlock(connection: Connection, key: int) -> None:
    """Give the lock back; a connection that cannot is closed, which ends the session (and
    its locks) instead of pooling a connection that still holds one."""
    try:
        with connection.begin():
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    except Exception:
        connection.invalidate()
        raise


def _flock(descriptor: int, name: str, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise _timeout(name, wait_s) from None
            time.sleep(random.uniform(0.005, 0.03))  # jitter: waiters do not move in step


@contextmanager
def _process_lock(name: str, wait_s: float) -> Iterator[None]:
    with _PROCESS_LOCKS_GUARD:
        lock = _PROCESS_LOCKS.setdefault(name, threading.Lock())
    if not lock.acquire(timeout=wait_s):
        raise _timeout(name, wait_s)
    try:
        yield
    finally:
        lock.release()


def _timeout(name: str, wait_s: float) -> LockTimeout:
    return LockTimeout(
        f"waited {wait_s:.0f} s for {name}: another mlstack process holds it (it is released "
        "when that process finishes or dies); try again"
    )


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:32]


def _key(name: str) -> int:
    """A signed 64-bit advisory lock key for `name`."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big", signed=True)
