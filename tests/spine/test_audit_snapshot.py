"""`verify` reads one snapshot: appends committed while it reads are never false alarms."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from stack.spine import SpineStore, audit_stream


@pytest.fixture
def store(spine_url: str) -> Iterator[SpineStore]:
    store = SpineStore.open(spine_url)
    yield store
    store.close()


def _append(store: SpineStore, i: int) -> None:
    store.audit(actor="writer", action="test.append", subject=f"w@{i}", payload={"i": i})


@pytest.mark.parametrize("parts", [1, 3], ids=["one stream", "in parallel"])
def test_an_append_between_verify_reads_is_not_a_false_alarm(
    store: SpineStore, spine_url: str, parts: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite a big log is checked in ranges by processes of their own, in snapshots
    later than the head's: the append is past the head, and no range reads it."""
    if parts > 1:
        if not spine_url.startswith("sqlite"):
            pytest.skip("the parallel check is SQLite's (PostgreSQL streams one cursor)")
        monkeypatch.setattr(audit_stream, "_parts", lambda entries: parts)
    for i in range(3):
        _append(store, i)
    writer = SpineStore.open(spine_url)
    appended: list[int] = []

    # Commit an append from another connection just after verify reads the chain head,
    # before it reads the entries: a verify reading two states calls that an insertion.
    def append_after_head_read(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not appended and "FROM audit_head" in statement and "FOR UPDATE" not in statement:
            appended.append(1)
            _append(writer, 99)

    event.listen(store.engine, "after_cursor_execute", append_after_head_read)
    try:
        result = store.verify_audit()
    finally:
        event.remove(store.engine, "after_cursor_execute", append_after_head_read)
        writer.close()
    assert appended, "the head was never read"
    assert result.ok, result.problems
    assert result.entries == 3  # the snapshot it started with
    assert store.verify_audit().entries == 4


def test_verify_while_a_writer_appends_never_reports_a_problem(
    store: SpineStore, spine_url: str
) -> None:
    writer = SpineStore.open(spine_url)
    done = threading.Event()

    def write() -> None:
        try:
            for i in range(150):
                _append(writer, i)
        finally:
            done.set()

    thread = threading.Thread(target=write)
    thread.start()
    verdicts = []
    try:
        while not done.is_set():
            verdicts.append(store.verify_audit())
    finally:
        thread.join()
        writer.close()
    assert [v.problems for v in verdicts if not v.ok] == []
    assert store.verify_audit().entries == 150
