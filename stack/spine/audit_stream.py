"""The fast check of an intact audit log: read as a stream, in constant memory, and on SQLite
in parallel over the machine's cores.

The stream answers one question — is the log whole? — and nothing more: entries 1..n, each
hash its content's, each linked to the one before, every anchor held. When it is not,
`audit_check` reads the log whole and says what was done to which entry.

On SQLite a log of `PARALLEL_FROM` entries or more is cut into consecutive ranges of `seq`,
one per available core (at most `MAX_PARTS`), each checked by a forked process with its own
read-only connection; the caller joins the ranges (each range's first entry names the hash
the range before ended with). SQLite writes each entry's bytes (`json_array`), which costs
more than hashing them, so the reading is what the cores share. Entries are only ever
appended past the chain head, so a range read after the head was (in a later snapshot)
holds the same entries as in the head's snapshot unless they were tampered with meanwhile;
such a change fails the stream and the whole-log walk, in the caller's snapshot, decides.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from stack.spine.anchors import Anchor
from stack.spine.audit import GENESIS_HASH, entry_body
from stack.spine.schema import AuditEntryRow

#: Rows fetched at a time (the stream's memory does not grow with the log).
BATCH = 10_000
#: A log this long or longer is checked in parallel on SQLite (below it, forking costs more
#: than it saves: ~20 ms a process against ~1.5 µs an entry).
PARALLEL_FROM = 200_000
#: The most processes one check starts.
MAX_PARTS = 8

#: Each entry's hashed bytes (`entry_body`) written by SQLite: `json_array` of the fields in
#: that order is the same compact JSON, its strings escaped as Python's JSON encoder escapes
#: them (\" and \\, \b \f \n \r \t, other control characters as \u00xx, the rest as
#: is, in UTF-8) and its integers written the same. A value of another type (a REAL `seq`)
#: comes out otherwise and fails the stream, and the walk then judges it by `entry_hash`.
#: Read as a BLOB: the bytes themselves, not decoded and encoded again.
SQLITE_BODIES = (
    "SELECT seq, CAST(json_array(seq, at, actor, action, subject, reason, payload, prev_hash) "
    "AS BLOB), prev_hash, hash FROM audit_entries"
)
_ALL = SQLITE_BODIES + " ORDER BY seq"
_RANGE = SQLITE_BODIES + " WHERE seq BETWEEN ? AND ? ORDER BY seq"
_OUTSIDE = "SELECT 1 FROM audit_entries WHERE seq < 1 OR seq > ? LIMIT 1"

Pending = Mapping[int, set[str]]


class Stretch(NamedTuple):
    """A run of consecutive, intact entries: `first`..`last` (`seq`), the hash the first one
    names as the one before it, and the last one's hash."""

    first: int
    last: int
    before: str
    hash: str


def stream(session: Session, head: tuple[int, str], anchors: Sequence[Anchor]) -> bool:
    """Whether the log, as `session` sees it, is whole up to `head` (`(seq, hash)` of the chain
    head, read in `session` before this call) and holds every anchor; False when anything
    is off (the caller's full walk then says what)."""
    pending: dict[int, set[str]] = {}
    for anchor in anchors:
        pending.setdefault(anchor.seq, set()).add(anchor.hash)
    if pending.pop(0, {GENESIS_HASH}) != {GENESIS_HASH} or any(s > head[0] for s in pending):
        return False
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        columns = (
            AuditEntryRow.seq,
            AuditEntryRow.at,
            AuditEntryRow.actor,
            AuditEntryRow.action,
            AuditEntryRow.subject,
            AuditEntryRow.reason,
            AuditEntryRow.payload,
            AuditEntryRow.prev_hash,
            AuditEntryRow.hash,
        )
        query = select(*columns).order_by(AuditEntryRow.seq)
        # A server-side cursor (psycopg's own would fetch every row at once).
        rows = connection.execute(query.execution_options(yield_per=BATCH)).tuples()
        whole = _stretch(((r[0], entry_body(r[:8]), r[7], r[8]) for r in rows), pending)
        return _joined([whole], head)
    path = connection.engine.url.database
    parts = _parts(head[0])
    dbapi = connection.connection.dbapi_connection  # the session's transaction: its snapshot
    assert dbapi is not None
    cursor = dbapi.cursor()
    cursor.arraysize = BATCH
    try:
        if parts > 1 and path and path != ":memory:" and os.path.isfile(path):
            # the ranges cover 1..head: an entry outside them is looked for here, in the
            # head's snapshot
            if cursor.execute(_OUTSIDE, (head[0],)).fetchone() is not None:
                return False
            return _joined(_parallel(path, head[0], parts, pending), head)
        return _joined([_stretch(cursor.execute(_ALL), pending)], head)
    except sqlite3.Error:  # a field JSON cannot hold (a BLOB)
        return False
    finally:
        cursor.close()


def _parts(entries: int) -> int:
    if entries < PARALLEL_FROM:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cores or 1, MAX_PARTS, entries // (PARALLEL_FROM // 2)))


def _parallel(path: str, entries: int, parts: int, pending: Pending) -> list[Stretch | None]:
    """Check `seq` 1..`entries` of the SQLite file at `path` as `parts` ranges, each in a
    forked process (this one keeps no thread a fork could copy mid-lock: the children use
    only sqlite3 and hashlib)."""
    size = -(-entries // parts)
    ranges = [(first, min(first + size - 1, entries)) for first in range(1, entries + 1, size)]
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(len(ranges), mp_context=context) as pool:
        futures = [
            pool.submit(
                check_range,
                path,
                first,
                last,
                {s: h for s, h in pending.items() if first <= s <= last},
            )
            for first, last in ranges
        ]
        return [future.result() for future in futures]


def check_range(path: str, first: int, last: int, pending: Pending) -> Stretch | None:
    """Entries `first`..`last` of the SQLite file at `path`, read through a read-only
    connection of their own, as one `Stretch`; None when they are not whole."""
    uri = f"file:{path}?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            cursor = db.cursor()
            cursor.arraysize = BATCH
            stretch = _stretch(cursor.execute(_RANGE, (first, last)), dict(pending), first)
    except sqlite3.Error:
        return None
    return stretch if stretch is not None and stretch.last == last else None


def _stretch(
    rows: Iterable[tuple[int, bytes, str, str]], pending: dict[int, set[str]], first: int = 1
) -> Stretch | None:
    """`(seq, body, prev_hash, hash)` rows in `seq` order from `first`, as a `Stretch` (for
    no rows an empty one, `first`..`first - 1`); None when a `seq` is missing or out of
    place, an entry names another hash than the one before it, a hash is not its content's,
    or an anchor in `pending` (taken from it as met) does not hold."""
    sha256 = hashlib.sha256
    count, before, last = first - 1, "", ""
    for seq, body, prev, digest in rows:
        count += 1
        if seq != count:
            return None
        if count == first:
            before = last = prev
        if prev != last or digest != sha256(body).hexdigest():
            return None
        if seq in pending and pending.pop(seq) != {digest}:
            return None
        last = digest
    if pending:  # an anchor past the entries read
        return None
    return Stretch(first, count, before, last)


def _joined(stretches: Sequence[Stretch | None], head: tuple[int, str]) -> bool:
    """Whether the stretches, in order, chain from the genesis hash up to `head`."""
    expected, last = GENESIS_HASH, 0
    for stretch in stretches:
        if stretch is None or stretch.first != last + 1:
            return False
        if stretch.last >= stretch.first:  # not empty
            if stretch.before != expected:
                return False
            expected = stretch.hash
        last = stretch.last
    return (last, expected) == head
