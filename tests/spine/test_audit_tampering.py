"""Each kind of tampering is reported against the entry it was done to, with its kind."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from stack.spine import SpineStore, audit_stream
from stack.spine.audit import Tampering, entry_body, entry_hash
from tests.support.postgres import PostgresServer

EDITED, REHASHED, FORGED = Tampering.EDITED, Tampering.REHASHED, Tampering.FORGED
INSERTED, DELETED, RENUMBERED = Tampering.INSERTED, Tampering.DELETED, Tampering.RENUMBERED


@pytest.fixture(
    params=["sqlite", "sqlite-parallel", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def spine_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The conftest's backends, and SQLite checked as a big log is: in ranges by forked
    processes (three here, whatever the machine's cores), each tampering then to be found by
    the ranges as by the one stream."""
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        with server.database() as url:
            yield url
        return
    if request.param == "sqlite-parallel":
        monkeypatch.setattr(audit_stream, "_parts", lambda entries: max(1, min(3, entries)))
    yield f"sqlite:///{tmp_path / 'spine.db'}"


@pytest.fixture
def store(spine_url: str) -> Iterator[SpineStore]:
    store = SpineStore.open(spine_url)
    for i in range(5):
        store.audit(
            actor="alice",
            action="model.registered",
            subject=f"churn@{i + 1}",
            reason="trained",
            payload={"auc": 0.8 + i / 100},
        )
    yield store
    store.close()


def sql(store: SpineStore, statement: str, **params: Any) -> None:
    with store.engine.begin() as connection:
        connection.execute(sa.text(statement), params)


def entry(store: SpineStore, seq: int) -> Any:
    with store.engine.connect() as connection:
        return connection.execute(
            sa.text("SELECT * FROM audit_entries WHERE seq = :seq"), {"seq": seq}
        ).one()


def rehash(row: Any, *, seq: int, actor: str) -> str:
    """The hash a writer with the formula computes for `row`, edited to `actor`."""
    return entry_hash(
        seq=seq,
        at=row.at,
        actor=actor,
        action=row.action,
        subject=row.subject,
        reason=row.reason,
        payload=row.payload,
        prev_hash=row.prev_hash,
    )


def make_room_at(store: SpineStore, seq: int) -> None:
    """Move entries `seq`.. one place up (in two steps: seq is the primary key)."""
    sql(store, "UPDATE audit_entries SET seq = -seq - 1 WHERE seq >= :s", s=seq)
    sql(store, "UPDATE audit_entries SET seq = -seq WHERE seq < 0")


def insert_at(store: SpineStore, seq: int, *, hash: str | None) -> None:
    """Slip a new approval in as entry `seq`, chained after entry `seq - 1`: with `hash`,
    or with the hash computed as mlstack would."""
    prev = entry(store, seq - 1)
    make_room_at(store, seq)
    fields = {
        "seq": seq,
        "at": prev.at,
        "actor": "mallory",
        "action": "approval.approved",
        "subject": "churn@5",
        "reason": "",
        "payload": "{}",
        "prev_hash": prev.hash,
    }
    fields["hash"] = hash or entry_hash(**fields)
    sql(
        store,
        "INSERT INTO audit_entries (seq, at, actor, action, subject, reason, payload, "
        "prev_hash, hash) VALUES (:seq, :at, :actor, :action, :subject, :reason, :payload, "
        ":prev_hash, :hash)",
        **fields,
    )


def found(store: SpineStore) -> list[tuple[Tampering, int, int]]:
    return [(f.kind, f.first, f.last) for f in store.verify_audit().findings]


def test_an_edited_entry_is_named_edited(store: SpineStore) -> None:
    sql(store, "UPDATE audit_entries SET actor = 'mallory' WHERE seq = 3")
    assert found(store) == [(EDITED, 3, 3)]
    assert "entry 3: edited" in store.verify_audit().problems[0]


def test_an_entry_edited_and_rehashed_is_named_not_the_one_after_it(store: SpineStore) -> None:
    forged = rehash(entry(store, 2), seq=2, actor="mallory")
    sql(store, "UPDATE audit_entries SET actor = 'mallory', hash = :h WHERE seq = 2", h=forged)
    assert found(store) == [(REHASHED, 2, 2)]
    assert store.verify_audit().problems[0].startswith("entry 2: edited and re-hashed")


def test_the_last_entry_edited_and_rehashed_is_caught_by_the_head(store: SpineStore) -> None:
    forged = rehash(entry(store, 5), seq=5, actor="mallory")
    sql(store, "UPDATE audit_entries SET actor = 'mallory', hash = :h WHERE seq = 5", h=forged)
    assert found(store) == [(REHASHED, 5, 5)]


def test_an_entry_forged_at_the_end_is_named_forged(store: SpineStore) -> None:
    last = entry(store, 5)
    sql(
        store,
        "INSERT INTO audit_entries (seq, at, actor, action, subject, reason, payload, "
        "prev_hash, hash) VALUES (6, :at, 'mallory', 'approval.approved', 'churn@5', '', '{}', "
        ":prev, :fake)",
        at=last.at,
        prev=last.hash,
        fake="f" * 64,
    )
    assert found(store) == [(FORGED, 6, 6)]
    assert "after the chain head (entry 5)" in store.verify_audit().problems[0]


def test_an_entry_forged_in_the_middle_is_named_and_the_rest_renumbered(
    store: SpineStore,
) -> None:
    insert_at(store, 3, hash="f" * 64)
    assert found(store) == [(FORGED, 3, 3), (RENUMBERED, 4, 6)]
    problems = store.verify_audit().problems
    assert "entry 3: forged" in problems[0]
    assert "entries 4..6: renumbered: written as entries 3..5" in problems[1]


def test_an_entry_inserted_in_the_middle_with_a_computed_hash_is_named_inserted(
    store: SpineStore,
) -> None:
    insert_at(store, 3, hash=None)
    assert found(store) == [(INSERTED, 3, 3), (RENUMBERED, 4, 6)]
    assert "entry 4 follows the entry before it" in store.verify_audit().problems[0]


def test_a_deleted_entry_is_named_by_its_number(store: SpineStore) -> None:
    sql(store, "DELETE FROM audit_entries WHERE seq = 3")
    assert found(store) == [(DELETED, 3, 3)]
    assert store.verify_audit().problems == ("entry 3 missing: deleted",)


def test_a_deletion_hidden_by_renumbering_is_named(store: SpineStore) -> None:
    sql(store, "DELETE FROM audit_entries WHERE seq = 3")
    sql(store, "UPDATE audit_entries SET seq = seq - 1 WHERE seq = 4")
    sql(store, "UPDATE audit_entries SET seq = seq - 1 WHERE seq = 5")
    assert found(store) == [(DELETED, 3, 3), (RENUMBERED, 3, 4)]


def test_entries_deleted_from_the_end_are_named(store: SpineStore) -> None:
    sql(store, "DELETE FROM audit_entries WHERE seq >= 4")
    assert found(store) == [(DELETED, 4, 5)]
    assert "entries 4..5 missing: deleted from the end" in store.verify_audit().problems[0]


def test_swapped_entries_are_each_named_renumbered(store: SpineStore) -> None:
    sql(store, "UPDATE audit_entries SET seq = -2 WHERE seq = 2")
    sql(store, "UPDATE audit_entries SET seq = 2 WHERE seq = 3")
    sql(store, "UPDATE audit_entries SET seq = 3 WHERE seq = -2")
    assert found(store) == [(RENUMBERED, 2, 2), (RENUMBERED, 3, 3)]


def test_a_deleted_chain_head_is_reported(store: SpineStore) -> None:
    sql(store, "DELETE FROM audit_head")
    assert found(store) == [(Tampering.HEAD, 5, 5)]


def test_a_wiped_log_whose_head_survived_is_all_deleted(store: SpineStore) -> None:
    sql(store, "DELETE FROM audit_entries")
    assert found(store) == [(DELETED, 1, 5)]


def test_what_the_chain_alone_cannot_see(store: SpineStore) -> None:
    """Truncation with the head moved back, and a wipe of entries and head, leave a log
    consistent with itself: only signed anchors (test_audit_anchors) catch them."""
    third = entry(store, 3)
    sql(store, "DELETE FROM audit_entries WHERE seq > 3")
    sql(store, "UPDATE audit_head SET seq = 3, hash = :h", h=third.hash)
    assert store.verify_audit().ok
    sql(store, "DELETE FROM audit_entries")
    sql(store, "DELETE FROM audit_head")
    assert store.verify_audit().ok


def test_the_last_entry_with_a_made_up_hash_is_named_edited_or_forged(store: SpineStore) -> None:
    """Nothing follows the last entry, so a wrong hash there (head moved to it) cannot tell an
    edit from a forgery: the finding says both."""
    sql(store, "UPDATE audit_entries SET actor = 'mallory', hash = :h WHERE seq = 5", h="f" * 64)
    sql(store, "UPDATE audit_head SET hash = :h", h="f" * 64)
    assert found(store) == [(EDITED, 5, 5)]
    assert "edited, or forged with a made-up hash" in store.verify_audit().problems[0]


def test_a_chain_head_edited_alone_is_not_blamed_on_the_last_entry_only(store: SpineStore) -> None:
    """The head's hash changed, the last entry untouched: from the chain this looks like the
    last entry edited and re-hashed, so the finding names both (an anchor tells which)."""
    sql(store, "UPDATE audit_head SET hash = :h", h="e" * 64)
    [problem] = store.verify_audit().problems
    assert "entry 5: edited and re-hashed, or the chain head was edited" in problem


@pytest.mark.parametrize(
    "text",
    ["plain", 'quote " and \\ backslash', "control \n\t\x00\x1f", "é ü 中文 😀", "\u2028\u2029"],
)
def test_an_entry_is_hashed_over_its_compact_json(text: str) -> None:
    """The hash covers exactly the bytes json.dumps writes for the entry's fields (the
    format every existing log was written with), whatever the characters."""
    import hashlib
    import json

    fields = [7, "2025-01-01T00:00:00.000000+00:00", text, "act", f"m@{text}", text, "{}", "0"]
    body = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    names = ("seq", "at", "actor", "action", "subject", "reason", "payload", "prev_hash")
    assert entry_hash(**dict(zip(names, fields, strict=True))) == hashlib.sha256(body).hexdigest()


#: Every character JSON escapes, and some it writes as they are.
EVERY_ESCAPE = "".join(map(chr, range(0x20))) + '"\\/\x7f é 中文 😀 \u2028\u2029 \ufeff'


@pytest.mark.parametrize("text", ["plain", EVERY_ESCAPE])
def test_sqlite_writes_the_bytes_entry_hash_hashes(tmp_path: Path, text: str) -> None:
    """On SQLite `audit verify` has SQLite write each entry's bytes (`json_array`): they are
    `entry_body`'s for every character, so an intact log passes the constant-memory stream,
    not only the whole-log walk."""
    from sqlalchemy.orm import Session

    from stack.spine.audit_stream import SQLITE_BODIES, stream

    store = SpineStore.open(f"sqlite:///{tmp_path / 'spine.db'}")
    try:
        store.audit(actor=text, action=f"a {text}", subject=f"m@{text}", reason=text)
        store.audit(actor="bob", action="x", subject="m", payload={"text": text, text: [1]})
        with store.engine.connect() as connection:
            rows = connection.exec_driver_sql(
                "SELECT seq, at, actor, action, subject, reason, payload, prev_hash, hash "
                "FROM audit_entries ORDER BY seq"
            ).all()
            bodies = [body for _, body, *_ in connection.exec_driver_sql(SQLITE_BODIES)]
        assert bodies == [entry_body(tuple(row)[:8]) for row in rows]
        with Session(store.engine) as session:
            assert stream(session, (2, rows[-1][8]), ())
        assert store.verify_audit().ok
    finally:
        store.close()


@pytest.mark.parametrize("spine_url", ["sqlite"], indirect=True)
def test_an_edit_sqlite_would_write_alike_is_still_caught(store: SpineStore) -> None:
    """The stream's bytes are SQLite's, but an entry edited to other text that means the same
    (a payload re-serialized with other escapes or spacing) still fails: the hash covers the
    stored text."""
    written = entry(store, 3).payload
    alike = json.dumps(json.loads(written), indent=1, ensure_ascii=True)
    assert alike != written
    sql(store, "UPDATE audit_entries SET payload = :p WHERE seq = 3", p=alike)
    assert [(f.kind, f.first) for f in store.verify_audit().findings] == [(EDITED, 3)]
    sql(store, "UPDATE audit_entries SET payload = :p WHERE seq = 3", p=written)
    assert store.verify_audit().ok


def test_a_whole_log_is_verified_in_one_stream_and_anchors_checked(store: SpineStore) -> None:
    """The intact case reads the log once, as a stream; an anchor the log no longer holds
    still fails it."""
    from datetime import UTC, datetime

    from stack.spine.anchors import Anchor

    head = store.verify_audit()
    assert head.ok and head.entries > 0
    now = datetime.now(UTC)
    assert store.verify_audit([Anchor(head.head_seq, head.head_hash, now)]).ok
    assert store.verify_audit([Anchor(0, "0" * 64, now)]).ok
    wrong = store.verify_audit([Anchor(head.head_seq, "f" * 64, now)])
    assert [f.kind for f in wrong.findings] == [Tampering.ANCHOR]
    ahead = store.verify_audit([Anchor(head.head_seq + 2, "f" * 64, now)])
    assert not ahead.ok
