"""The audit log: append-only and hash-chained, so any edit, reorder or deletion shows.

Each entry's hash is SHA-256 over its own fields and the previous entry's hash. A single head
row names the last entry; an append locks that row (FOR UPDATE on PostgreSQL, BEGIN IMMEDIATE
on SQLite), so concurrent writers queue up instead of forking the chain, and deleting entries
from the end is caught by comparing the head with the last entry. `audit_check` walks the
chain; `anchors` signs its head outside the database.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from json.encoder import encode_basestring
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from stack.spine.schema import AuditEntryRow, AuditHeadRow
from stack.spine.timeutil import from_text, now_utc, to_text

GENESIS_HASH = "0" * 64
#: The JSON string encoder `json.dumps(..., ensure_ascii=False)` uses (C when available).
_quote: Callable[[str], str] = encode_basestring
HEAD_ID = 1
#: An entry's hashed fields, in order: seq, at, actor, action, subject, reason, payload,
#: prev_hash.
EntryFields = tuple[int, str, str, str, str, str, str, str]


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


class Tampering(StrEnum):
    """What was done to the log, as far as the chain (and any anchors) can tell."""

    EDITED = "edited"  # content changed, its hash left as written
    REHASHED = "edited and re-hashed"  # content changed and its own hash recomputed
    FORGED = "forged"  # an entry that was never appended, with a hash that is not its own
    INSERTED = "inserted"  # an entry that was never appended, its hash computed
    DELETED = "deleted"  # entries missing: a gap, or the end gone
    RENUMBERED = "renumbered"  # entries moved to other positions (reordered, or shifted)
    HEAD = "head"  # the chain-head row disagrees with the entries
    ANCHOR = "anchor"  # the log disagrees with a signed anchor (truncated, wiped, rewritten)


@dataclass(frozen=True, slots=True)
class AuditFinding:
    """One thing wrong with the log: its kind, the entries concerned (their `seq`, as stored;
    for deleted entries, the numbers they were written with) and what the check saw."""

    kind: Tampering
    first: int
    last: int
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class AuditVerification:
    """What `verify` found in one snapshot of the log.

    `entries` is the number of rows read; `head_seq`/`head_hash` the chain head of that
    snapshot (what `mlstack audit anchor` signs); `findings` each problem, in log order.
    """

    entries: int
    findings: tuple[AuditFinding, ...] = ()
    head_seq: int = 0
    head_hash: str = GENESIS_HASH

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def problems(self) -> tuple[str, ...]:
        """Each finding as one line naming the entries and the kind of tampering."""
        return tuple(str(finding) for finding in self.findings)


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
    """SHA-256 (hex) of the entry's `entry_body`."""
    body = entry_body((seq, at, actor, action, subject, reason, payload, prev_hash))
    return hashlib.sha256(body).hexdigest()


def entry_body(fields: EntryFields) -> bytes:
    """The bytes an entry's hash covers, from its fields in `EntryFields`' order: the entry as
    compact JSON, `[seq,at,actor,action,subject,reason,payload,prev_hash]` (UTF-8, not
    ASCII-escaped): what `json.dumps(..., separators=(",", ":"), ensure_ascii=False)` writes,
    put together with its own string encoder (a third of the time of building the list and
    dumping it)."""
    seq, at, actor, action, subject, reason, payload, prev = fields
    q = _quote
    return (
        f"[{int(seq)},{q(at)},{q(actor)},{q(action)},{q(subject)},{q(reason)},{q(payload)},"
        f"{q(prev)}]"
    ).encode()


def lock_head(session: Session) -> None:
    """Take the chain head's lock for the rest of the transaction: writers that check
    something before they append (an approval not given twice) are serialized by it."""
    session.execute(select(AuditHeadRow).where(AuditHeadRow.id == HEAD_ID).with_for_update())


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
        select(AuditHeadRow).where(AuditHeadRow.id == HEAD_ID).with_for_update()
    ).scalar_one_or_none()
    if head is None:
        head = AuditHeadRow(id=HEAD_ID, seq=0, hash=GENESIS_HASH)
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
    row.hash = row_hash(row)
    session.add(row)
    head.seq, head.hash = row.seq, row.hash
    session.flush()
    return to_entry(row)


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


def row_hash(row: AuditEntryRow, *, seq: int | None = None) -> str:
    """The hash `row` would have if it were written as entry `seq` (its own by default)."""
    return entry_hash(
        seq=row.seq if seq is None else seq,
        at=row.at,
        actor=row.actor,
        action=row.action,
        subject=row.subject,
        reason=row.reason,
        payload=row.payload,
        prev_hash=row.prev_hash,
    )
