"""Walk one snapshot of the audit log and name each tampered entry with what was done to it.

Every entry is judged by its own hash (does it match its content, and with which `seq` was
it computed?) and by its links (does an entry, or the chain head, name its hash as the one
before?). From those two facts:

- hash right, named by the next entry ............ intact (renumbered if written elsewhere)
- hash wrong, named by the next entry ............ edited (its content changed)
- hash right, not named, next entry names a hash
  no entry has ................................... edited and re-hashed
- not named, and the next entry follows the entry
  before it ...................................... inserted (hash right) or forged (wrong)
- positions no entry was written with ............ deleted (a gap, or the end)

Signed anchors (`stack.spine.anchors`) then say whether the log still holds what it held
when each was signed: truncation, wipes and rewrites that kept the chain consistent.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from stack.spine.anchors import Anchor
from stack.spine.audit import (
    GENESIS_HASH,
    HEAD_ID,
    AuditFinding,
    AuditVerification,
    Tampering,
    row_hash,
)
from stack.spine.audit_stream import stream
from stack.spine.schema import AuditEntryRow, AuditHeadRow
from stack.spine.timeutil import to_text

# How far from its stored position an entry's written `seq` is looked for when no link
# says where it was written (the first entry after a deletion that renumbered the rest).
_RENUMBER_SEARCH = 64


def verify(session: Session, anchors: Sequence[Anchor] = ()) -> AuditVerification:
    """Check the log as `session` sees it (one snapshot: use a reader session), against the
    chain head and each of `anchors` (already checked for their signatures)."""
    head = session.get(AuditHeadRow, HEAD_ID)  # first: the snapshot is the head's
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS_HASH)
    if stream(session, (head_seq, head_hash), anchors):
        return AuditVerification(entries=head_seq, head_seq=head_seq, head_hash=head_hash)
    # Something is off: read the log whole and work out what was done to which entry.
    rows = list(session.execute(select(AuditEntryRow).order_by(AuditEntryRow.seq)).scalars())
    walk = _Walk(rows, (head.seq, head.hash) if head else None)
    findings = walk.findings() + walk.against(anchors)
    findings.sort(key=lambda f: (f.first, f.last))
    return AuditVerification(
        entries=len(rows), findings=tuple(findings), head_seq=head_seq, head_hash=head_hash
    )


@dataclass(slots=True)
class _Entry:
    row: AuditEntryRow
    written: int | None  # the seq its hash was computed with; None: not its content's hash
    position: int = 0  # where it belongs in the chain: written, else inferred from its links

    @property
    def seq(self) -> int:
        return self.row.seq

    @property
    def hash(self) -> str:
        return self.row.hash

    @property
    def prev(self) -> str:
        return self.row.prev_hash


class _Walk:
    def __init__(self, rows: list[AuditEntryRow], head: tuple[int, str] | None) -> None:
        self.head = head
        self.entries = _written_positions(rows)
        self.hashes = {e.hash for e in self.entries}
        self.children: dict[str, list[_Entry]] = defaultdict(list)
        for entry in self.entries:
            self.children[entry.prev].append(entry)
        self.at_position = {e.position: e for e in self.entries}
        self.intruders: set[int] = set()

    def findings(self) -> list[AuditFinding]:
        found = [f for e in self.entries if (f := self._judge(e)) is not None]
        found += self._renumbered() + self._deleted() + self._head(found)
        return found

    # -- one entry ----------------------------------------------------------------------

    def _judge(self, entry: _Entry) -> AuditFinding | None:
        seq, head_seq = entry.seq, self.head[0] if self.head else None
        if head_seq is not None and entry.position > head_seq:
            self.intruders.add(seq)
            how = f"after the chain head (entry {head_seq}), not appended by mlstack"
            return self._intruder(entry, how)
        if self._named(entry):
            if entry.written is not None:
                return None
            if entry.hash not in self.children:  # only the head names it: nothing follows
                return _at(
                    Tampering.EDITED,
                    seq,
                    "edited, or forged with a made-up hash: its hash does not match its "
                    "content (it is the last entry, so nothing follows it to tell which)",
                )
            return _at(
                Tampering.EDITED,
                seq,
                "edited: its content was changed after it was written (its hash no longer "
                "matches it)",
            )
        siblings = [e for e in self.children[entry.prev] if e is not entry]
        if siblings:
            self.intruders.add(seq)
            how = f"never appended: entry {siblings[0].seq} follows the entry before it"
            return self._intruder(entry, how)
        successor = self.at_position.get(entry.position + 1)
        if successor is not None and successor.prev not in self.hashes:
            if entry.written is not None:
                return _at(
                    Tampering.REHASHED,
                    seq,
                    f"edited and re-hashed: its hash was recomputed after an edit, but entry "
                    f"{successor.seq} was chained to the hash it was written with",
                )
            return _at(
                Tampering.FORGED,
                seq,
                f"forged in place of the entry written there: its hash is not its content's, "
                f"and entry {successor.seq} was chained to a different one",
            )
        if successor is None and self.head is not None and self.head[0] == entry.position:
            if entry.written is not None:  # the last entry: the head holds what it was
                return _at(
                    Tampering.REHASHED,
                    seq,
                    "edited and re-hashed, or the chain head was edited: the last entry's "
                    "hash matches its content but the chain head holds another (the chain "
                    "cannot tell which; a signed anchor can)",
                )
            return _at(
                Tampering.FORGED,
                seq,
                "forged in place of the last entry: its hash is neither its content's nor "
                "the one the chain head holds",
            )
        if entry.written is None:  # what followed it is gone: see the deletion
            return _at(Tampering.EDITED, seq, "edited: its hash no longer matches its content")
        return None  # not named because what followed it was deleted: reported as such

    def _named(self, entry: _Entry) -> bool:
        """Some entry, or the chain head, names this entry's hash as the one before it."""
        return entry.hash in self.children or (self.head is not None and self.head[1] == entry.hash)

    @staticmethod
    def _intruder(entry: _Entry, how: str) -> AuditFinding:
        if entry.written is None:
            return _at(Tampering.FORGED, entry.seq, f"forged: {how}; its hash is not its content's")
        return _at(Tampering.INSERTED, entry.seq, f"inserted: {how}")

    # -- the log as a whole -------------------------------------------------------------

    def _renumbered(self) -> list[AuditFinding]:
        runs: list[list[_Entry]] = []
        for entry in self.entries:
            if entry.written is None or entry.written == entry.seq:
                continue
            shift = entry.seq - entry.written
            last = runs[-1][-1] if runs else None
            if last is not None and last.seq + 1 == entry.seq and last.seq - last.position == shift:
                runs[-1].append(entry)
            else:
                runs.append([entry])
        found = []
        for run in runs:
            first, last = run[0], run[-1]
            stored = _span(first.seq, last.seq)
            written = _span(first.position, last.position)
            found.append(
                AuditFinding(
                    Tampering.RENUMBERED,
                    first.seq,
                    last.seq,
                    f"{stored}: renumbered: written as {written} (entries were moved, or some "
                    "inserted or deleted before them and the rest renumbered)",
                )
            )
        return found

    def _deleted(self) -> list[AuditFinding]:
        present = {e.position for e in self.entries if e.seq not in self.intruders}
        last_present = max(present, default=0)
        top = max(last_present, self.head[0] if self.head else 0)
        found = []
        for first, last in _ranges(sorted(set(range(1, top + 1)) - present)):
            where = _span(first, last) + " missing"
            if first > last_present:
                message = f"{where}: deleted from the end (the chain head names entry {top})"
            else:
                message = f"{where}: deleted"
            found.append(AuditFinding(Tampering.DELETED, first, last, message))
        return found

    def _head(self, found: list[AuditFinding]) -> list[AuditFinding]:
        if self.head is None:
            if not self.entries:
                return []
            last = self.entries[-1].seq
            return [
                AuditFinding(
                    Tampering.HEAD,
                    last,
                    last,
                    "the chain head row is missing (deleted): deletions from the end cannot be "
                    "seen without it",
                )
            ]
        head_seq, head_hash = self.head
        if head_hash in self.hashes or head_seq == 0 or head_seq > self._last_position():
            return []
        if any(f.first == head_seq and f.kind is not Tampering.RENUMBERED for f in found):
            return []  # the last entry was edited, forged or re-hashed: already said
        return [
            AuditFinding(
                Tampering.HEAD,
                head_seq,
                head_seq,
                f"the chain head (entry {head_seq}) holds a hash no entry has: entries before "
                "it were rewritten, or the head was edited",
            )
        ]

    def _last_position(self) -> int:
        return max((e.position for e in self.entries if e.seq not in self.intruders), default=0)

    def against(self, anchors: Sequence[Anchor]) -> list[AuditFinding]:
        """Does the log still hold each anchored entry, with the hash it was signed with?"""
        last = self._last_position()
        found, matched_before = [], 0
        for anchor in sorted(anchors, key=lambda a: a.seq):
            signed = f"signed {to_text(anchor.at)}"
            if anchor.hash in self.hashes or (anchor.seq == 0 and anchor.hash == GENESIS_HASH):
                matched_before = anchor.seq
                continue
            if anchor.seq > last:
                found.append(
                    AuditFinding(
                        Tampering.ANCHOR,
                        last + 1,
                        anchor.seq,
                        f"{_span(last + 1, anchor.seq)} missing: the log ends at entry "
                        f"{last}, but an anchor {signed} holds entry {anchor.seq} (deleted from "
                        "the end, or the log wiped)",
                    )
                )
                continue
            since = f"after entry {matched_before} (whose anchor still matches)"
            found.append(
                AuditFinding(
                    Tampering.ANCHOR,
                    anchor.seq,
                    anchor.seq,
                    f"entry {anchor.seq}: not the entry anchored ({signed}): the log was "
                    f"rewritten at or before it{'' if not matched_before else ', ' + since}",
                )
            )
        return found


def _written_positions(rows: list[AuditEntryRow]) -> list[_Entry]:
    """Each row with the seq its hash was computed with, and its place in the chain."""
    entries: list[_Entry] = []
    position_of: dict[str, int] = {GENESIS_HASH: 0}
    for row in rows:
        written = None
        if row_hash(row) == row.hash:
            written = row.seq
        else:
            after = position_of.get(row.prev_hash)
            for candidate in _candidates(row.seq, None if after is None else after + 1):
                if row_hash(row, seq=candidate) == row.hash:
                    written = candidate
                    break
        entry = _Entry(row, written)
        after = position_of.get(row.prev_hash)
        entry.position = written or (after + 1 if after is not None else row.seq)
        position_of.setdefault(row.hash, entry.position)
        entries.append(entry)
    return entries


def _candidates(seq: int, linked: int | None) -> list[int]:
    near = sorted(
        (s for s in range(seq - _RENUMBER_SEARCH, seq + _RENUMBER_SEARCH + 1) if s > 0),
        key=lambda s: abs(s - seq),
    )
    return ([linked] if linked is not None and linked != seq else []) + [
        s for s in near if s != seq
    ]


def _ranges(numbers: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for n in numbers:
        if out and out[-1][1] + 1 == n:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out


def _span(first: int, last: int) -> str:
    return f"entry {first}" if first == last else f"entries {first}..{last}"


def _at(kind: Tampering, seq: int, what: str) -> AuditFinding:
    return AuditFinding(kind, seq, seq, f"entry {seq}: {what}")
