"""The audit log: append-only and hash-chained, so any edit, reorder or deletion shows.

Each entry's hash is SHA-256 over its own fields and the previous entry's hash. A single head
row names the last entry; an append locks that row (FOR UPDATE on PostgreSQL, BEGIN IMMEDIATE
on SQLite), so concurrent writers queue up instead of forking the chain, and deleting entries
from the end is caught by comparing the head with the last entry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from stack.spine.schema import AuditEntryRow, AuditHeadRow
from stack.spine.timeutil import from_text, now_utc, to_text

GENESIS_HASH = "0" * 64
_HEAD_ID = 1


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    at: datetime
    actor: str
    action: str
    subject: str
    reason: str
    payload: Mapping[str, Any]
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": to_text(self.at),
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "reason": self.reason,
            "payload": dict(self.payload),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True, slots=True)
class AuditVerification:
    entries: int
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.problems


def canonical_payload(payload: Mapping[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)


def entry_hash(
    *,
    seq: int,
    at: str,
    actor: str,
    action: str,
    subject: str,
    reason: str,
    payload: str,
    prev_hash: str,
) -> str:
    body = json.dumps(
        [seq, at, actor, action, subject, reason, payload, prev_hash],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def lock_head(session: Session) -> None:
    """Take the chain head's lock for the rest of the transaction: writers that check
    something before they append (an approval not given twice) are serialized by it."""
    session.execute(select(AuditHeadRow).where(AuditHeadRow.id == _HEAD_ID).with_for_update())


def append(
    session: Session,
    *,
    actor: str,
    action: str,
    subject: str,
    reason: str = "",
    payload: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry inside the caller's transaction, after locking the chain head."""
    head = session.execute(
        select(AuditHeadRow).where(AuditHeadRow.id == _HEAD_ID).with_for_update()
    ).scalar_one_or_none()
    if head is None:
        head = AuditHeadRow(id=_HEAD_ID, seq=0, hash=GENESIS_HASH)
        session.add(head)
    row = AuditEntryRow(
        seq=head.seq + 1,
        at=to_text(now_utc()),
        actor=actor,
        action=action,
        subject=subject,
        reason=reason,
        payload=canonical_payload(payload or {}),
        prev_hash=head.hash,
        hash="",
    )
    row.hash = _row_hash(row)
    session.add(row)
    head.seq, head.hash = row.seq, row.hash
    session.flush()
    return to_entry(row)


def verify(session: Session) -> AuditVerification:
    """Walk the chain from the first entry; report every place where it does not hold."""
    problems: list[str] = []
    expected_seq, prev_hash, count = 1, GENESIS_HASH, 0
    last: AuditEntryRow | None = None
    for row in session.execute(select(AuditEntryRow).order_by(AuditEntryRow.seq)).scalars():
        count += 1
        if row.seq != expected_seq:
            problems.append(
                f"entry {expected_seq}"
                + (f"..{row.seq - 1}" if row.seq - 1 > expected_seq else "")
                + " missing: deleted from the log"
            )
        if row.prev_hash != prev_hash:
            problems.append(
                f"entry {row.seq}: does not follow the entry before it (reordered or inserted)"
            )
        if _row_hash(row) != row.hash:
            problems.append(f"entry {row.seq}: its content was changed after it was written")
        expected_seq, prev_hash, last = row.seq + 1, row.hash, row
    head = session.get(AuditHeadRow, _HEAD_ID)
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS_HASH)
    last_seq, last_hash = (last.seq, last.hash) if last else (0, GENESIS_HASH)
    if (head_seq, head_hash) != (last_seq, last_hash):
        if head_seq > last_seq:
            problems.append(f"entries {last_seq + 1}..{head_seq} missing: deleted from the end")
        else:
            problems.append(f"the chain head (entry {head_seq}) does not match the last entry")
    return AuditVerification(entries=count, problems=tuple(problems))


def to_entry(row: AuditEntryRow) -> AuditEntry:
    return AuditEntry(
        seq=row.seq,
        at=from_text(row.at),
        actor=row.actor,
        action=row.action,
        subject=row.subject,
        reason=row.reason,
        payload=json.loads(row.payload),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def _row_hash(row: AuditEntryRow) -> str:
    return entry_hash(
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        action=row.action,
        subject=row.subject,
        reason=row.reason,
        payload=row.payload,
        prev_hash=row.prev_hash,
    )
