"""Signed anchors catch what a writer can do to a log that stays consistent with itself:
cut its end (head moved back), wipe it (head too), or rewrite it (every hash recomputed)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from stack.spine import SpineStore
from stack.spine import anchors as signed
from stack.spine.audit import Tampering, row_hash
from stack.spine.schema import AuditEntryRow, AuditHeadRow


@pytest.fixture
def store(spine_url: str) -> Iterator[SpineStore]:
    store = SpineStore.open(spine_url)
    yield store
    store.close()


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private, public = tmp_path / "keys" / "anchor.key", tmp_path / "keys" / "anchor.pub"
    signed.generate_keypair(private, public)
    return private, public


@pytest.fixture
def anchors(tmp_path: Path) -> Path:
    return tmp_path / "anchors.jsonl"


def fill(store: SpineStore, count: int) -> None:
    for i in range(count):
        store.audit(actor="alice", action="model.registered", subject=f"churn@{i + 1}")


def anchor_now(store: SpineStore, private: Path, path: Path) -> None:
    head = store.verify_audit()
    assert head.ok, head.problems
    signed.append(
        path, signed.sign(head.head_seq, head.head_hash, signed.load_private_key(private))
    )


def check(store: SpineStore, public: Path, path: Path) -> list[tuple[Tampering, int, int]]:
    held = signed.read(path, signed.load_public_key(public))
    result = store.verify_audit(held.anchors)
    return [(f.kind, f.first, f.last) for f in held.findings + result.findings]


def sql(store: SpineStore, statement: str) -> None:
    with store.engine.begin() as connection:
        connection.execute(sa.text(statement))


def test_an_intact_log_holds_its_anchors(
    store: SpineStore, keys: tuple[Path, Path], anchors: Path
) -> None:
    fill(store, 3)
    anchor_now(store, keys[0], anchors)
    fill(store, 2)  # appended after the anchor: still fine
    anchor_now(store, keys[0], anchors)
    assert check(store, keys[1], anchors) == []


def test_a_cut_end_with_the_head_moved_back_is_caught(
    store: SpineStore, keys: tuple[Path, Path], anchors: Path
) -> None:
    fill(store, 5)
    anchor_now(store, keys[0], anchors)
    sql(store, "DELETE FROM audit_entries WHERE seq > 3")
    sql(
        store,
        "UPDATE audit_head SET seq = 3, hash = (SELECT hash FROM audit_entries WHERE seq = 3)",
    )
    assert store.verify_audit().ok  # the chain alone sees a shorter, consistent log
    assert check(store, keys[1], anchors) == [(Tampering.ANCHOR, 4, 5)]


def test_a_wiped_log_and_head_is_caught(
    store: SpineStore, keys: tuple[Path, Path], anchors: Path
) -> None:
    fill(store, 4)
    anchor_now(store, keys[0], anchors)
    sql(store, "DELETE FROM audit_entries")
    sql(store, "DELETE FROM audit_head")
    assert check(store, keys[1], anchors) == [(Tampering.ANCHOR, 1, 4)]


def test_a_rewrite_with_every_hash_recomputed_is_placed_between_anchors(
    store: SpineStore, keys: tuple[Path, Path], anchors: Path
) -> None:
    fill(store, 3)
    anchor_now(store, keys[0], anchors)
    fill(store, 2)
    anchor_now(store, keys[0], anchors)
    # A writer edits entry 4 and recomputes every hash after it, and the head.
    with Session(store.engine) as session, session.begin():
        rows = list(session.scalars(sa.select(AuditEntryRow).order_by(AuditEntryRow.seq)))
        rows[3].actor = "mallory"
        for before, row in itertools.pairwise(rows[2:]):
            row.prev_hash = before.hash
            row.hash = row_hash(row)
        head = session.get(AuditHeadRow, 1)
        assert head is not None
        head.hash = rows[-1].hash
    assert store.verify_audit().ok
    held = signed.read(anchors, signed.load_public_key(keys[1]))
    [finding] = store.verify_audit(held.anchors).findings
    assert (finding.kind, finding.first) == (Tampering.ANCHOR, 5)
    assert "rewritten at or before it, after entry 3" in finding.message


def test_an_edited_or_foreign_anchor_is_refused(
    store: SpineStore, keys: tuple[Path, Path], anchors: Path
) -> None:
    fill(store, 2)
    anchor_now(store, keys[0], anchors)
    record = json.loads(anchors.read_text())
    record["seq"] = 1  # the writer's wish: an earlier end
    other_private, other_public = anchors.with_name("other.key"), anchors.with_name("other.pub")
    signed.generate_keypair(other_private, other_public)
    foreign = signed.sign(1, record["hash"], signed.load_private_key(other_private))
    with anchors.open("a") as handle:
        handle.write(json.dumps(record) + "\n" + json.dumps(foreign) + "\n")
    held = signed.read(anchors, signed.load_public_key(keys[1]))
    assert len(held.anchors) == 1
    problems = [str(f) for f in held.findings]
    assert problems[0].endswith(":2: its signature does not verify: edited after it was signed")
    assert ":3: signed by key" in problems[1]


def test_anchors_that_go_backwards_show_a_cut_between_anchorings(
    store: SpineStore, keys: tuple[Path, Path], anchors: Path
) -> None:
    key = signed.load_private_key(keys[0])
    fill(store, 3)
    signed.append(anchors, signed.sign(5, "e" * 64, key))  # a log once longer
    anchor_now(store, keys[0], anchors)
    held = signed.read(anchors, signed.load_public_key(keys[1]))
    assert "anchors entry 3 after entry 5 was anchored" in str(held.findings[0])


def test_an_empty_anchors_file_is_a_finding_and_a_missing_one_an_error(
    keys: tuple[Path, Path], tmp_path: Path
) -> None:
    public = signed.load_public_key(keys[1])
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert "holds no anchor" in str(signed.read(empty, public).findings[0])
    with pytest.raises(signed.AnchorError, match=r"no anchors file at .*gone\.jsonl"):
        signed.read(tmp_path / "gone.jsonl", public)


def test_keygen_refuses_to_overwrite_and_keeps_the_private_key_private(
    keys: tuple[Path, Path],
) -> None:
    private, public = keys
    assert private.stat().st_mode & 0o077 == 0
    with pytest.raises(signed.AnchorError, match="exists: not overwritten"):
        signed.generate_keypair(private, public)
