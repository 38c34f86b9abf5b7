"""The audit log: append-only, hash-chained, verifiable, safe under concurrent writers."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pytest

from stack.spine import SpineStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(spine_url: str) -> SpineStore:
    store = SpineStore.open(spine_url)
    yield store
    store.close()


def _fill(store: SpineStore, count: int = 5) -> None:
    for i in range(count):
        store.audit(
            actor="alice",
            action="model.registered",
            subject=f"churn@{i + 1}",
            reason="trained",
            payload={"auc": 0.8 + i / 100},
        )


def test_entries_are_chained_and_verify(store: SpineStore) -> None:
    _fill(store)
    entries = store.audit_entries()
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == "0" * 64
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    result = store.verify_audit()
    assert result.ok, result.problems
    assert result.entries == 5


def test_empty_log_verifies(store: SpineStore) -> None:
    assert store.verify_audit().ok


def test_filters_by_model_actor_action_and_time(store: SpineStore) -> None:
    _fill(store, 3)
    store.audit(actor="bob", action="approval.approved", subject="fraud@1")
    assert [e.subject for e in store.audit_entries(subject="churn")] == [
        "churn@1",
        "churn@2",
        "churn@3",
    ]
    assert [e.actor for e in store.audit_entries(actor="bob")] == ["bob"]
    assert len(store.audit_entries(action="model.registered")) == 3
    last = store.audit_entries()[-1]
    assert store.audit_entries(since=last.at) == [last]
    assert len(store.audit_entries(until=last.at)) == 3


def test_subject_filters_take_names_literally(store: SpineStore) -> None:
    """A model's entries are its own and its versions', in any case and with `_` or `%` in
    names (no LIKE wildcards); a prefix names every endpoint."""
    for subject in ("m_1", "m_1@2", "mx1@2", "M_1@3", "m_10@1", "endpoint:m_1", "endpoint:b"):
        store.audit(actor="a", action="x", subject=subject)
    assert [e.subject for e in store.audit_entries(subject="m_1")] == ["m_1", "m_1@2"]
    assert [e.subject for e in store.audit_entries(subject="m%")] == []
    store.audit(actor="a", action="y", subject="m_1@2")
    assert [e.action for e in store.audit_entries(subject="m_1", actions=("y", "z"))] == ["y"]
    assert [e.subject for e in store.audit_entries(subject_prefix="endpoint:")] == [
        "endpoint:m_1",
        "endpoint:b",
    ]


def test_approval_and_its_audit_entry_are_written_together(store: SpineStore) -> None:
    store.record_approval(
        subject="churn@2",
        target_state="serving",
        actor="lead",
        decision="approved",
        reason="looks good",
    )
    [approval] = store.approvals("churn@2", "serving")
    assert (approval.actor, approval.decision) == ("lead", "approved")
    [entry] = store.audit_entries(subject="churn@2")
    assert entry.action == "approval.approved"
    assert entry.payload == {"target_state": "serving"}


def test_bad_approval_decision_writes_nothing(store: SpineStore) -> None:
    with pytest.raises(ValueError, match="decision"):
        store.record_approval(
            subject="churn@2", target_state="serving", actor="lead", decision="maybe"
        )
    assert store.approvals("churn@2") == []
    assert store.audit_entries() == []


WRITER = """
import sys
from stack.spine import SpineStore
store = SpineStore.open(sys.argv[1])
for i in range(int(sys.argv[3])):
    store.audit(actor=sys.argv[2], action="test.append", subject=f"w@{i}", payload={"i": i})
store.close()
"""


def test_concurrent_writers_lose_nothing_and_keep_the_chain(spine_url: str) -> None:
    SpineStore.open(spine_url).close()  # schema first, so the writers race on appends only
    per_writer = 150
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, spine_url, name, str(per_writer)],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("writer-a", "writer-b")
    ]
    for writer in writers:
        _, err = writer.communicate(timeout=240)
        assert writer.returncode == 0, err
    store = SpineStore.open(spine_url)
    try:
        entries = store.audit_entries()
        assert len(entries) == 2 * per_writer
        assert [e.seq for e in entries] == list(range(1, 2 * per_writer + 1))
        for name in ("writer-a", "writer-b"):
            mine = [e.payload["i"] for e in entries if e.actor == name]
            assert mine == list(range(per_writer))
        assert store.verify_audit().ok
    finally:
        store.close()


def test_concurrent_first_opens_migrate_once(spine_url: str) -> None:
    openers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, spine_url, f"opener-{i}", "1"],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    for opener in openers:
        _, err = opener.communicate(timeout=240)
        assert opener.returncode == 0, err
    store = SpineStore.open(spine_url)
    try:
        assert len(store.audit_entries()) == 3
        assert store.verify_audit().ok
    finally:
        store.close()
