"""The audit log's table family, read and appended (the hash chain itself: audit.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from stack.spine import audit
from stack.spine.anchors import Anchor
from stack.spine.audit import AuditEntry, AuditVerification
from stack.spine.audit_check import verify as verify_chain
from stack.spine.schema import AuditEntryRow
from stack.spine.tables import SpineTables
from stack.spine.timeutil import to_text


class AuditLog(SpineTables):
    def audit(
        self,
        *,
        actor: str,
        action: str,
        subject: str,
        reason: str = "",
        payload: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Append one entry to the audit log and return it, hash included."""
        with self._transaction() as session:
            return audit.append(
                session,
                actor=actor,
                action=action,
                subject=subject,
                reason=reason,
                payload=payload,
            )

    def audit_entries(
        self,
        *,
        subject: str | None = None,
        subject_prefix: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        actions: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[AuditEntry]:
        """Entries oldest first: about `subject` (and its versions, `subject@N`), about any
        subject starting with `subject_prefix` (`endpoint:`), by `actor`, of `action` (or
        of any of `actions`), in [`since`, `until`). Subject filters read the subject index
        (a range on SQLite)."""
        query = select(AuditEntryRow).order_by(AuditEntryRow.seq)
        if subject is not None:
            query = query.where(
                (AuditEntryRow.subject == subject) | self._starts_with(f"{subject}@")
            )
        if subject_prefix is not None:
            query = query.where(self._starts_with(subject_prefix))
        if actor is not None:
            query = query.where(AuditEntryRow.actor == actor)
        if action is not None:
            query = query.where(AuditEntryRow.action == action)
        if actions is not None:
            query = query.where(AuditEntryRow.action.in_(actions))
        if since is not None:
            query = query.where(AuditEntryRow.at >= to_text(since))
        if until is not None:
            query = query.where(AuditEntryRow.at < to_text(until))
        with Session(self._reads) as session:
            return [audit.to_entry(row) for row in session.execute(query).scalars()]

    def model_audit_entries(
        self,
        model: str,
        *,
        actor: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[AuditEntry]:
        """Entries oldest first about `model`, its versions, and every endpoint whose
        audited traffic ever named a version of it (an endpoint may be named apart from its
        model): what `mlstack audit log --model` and the console's audit page select."""
        found = {
            e.seq: e
            for e in self.audit_entries(
                subject=model, actor=actor, action=action, since=since, until=until
            )
        }
        mentions = json.dumps(f"{model}@")[:-1]  # `"churn@`, as a JSON payload writes it
        endpoints = {
            e.subject
            for e in self.audit_entries(subject_prefix="endpoint:")
            if mentions in json.dumps(e.payload)
        }
        for endpoint in sorted(endpoints):
            found.update(
                (e.seq, e)
                for e in self.audit_entries(
                    subject=endpoint, actor=actor, action=action, since=since, until=until
                )
            )
        return [found[seq] for seq in sorted(found)]

    def _starts_with(self, prefix: str) -> ColumnElement[bool]:
        """`subject` starts with `prefix` (taken literally: `_` and `%` are no wildcards).
        On SQLite a range over the subject index (its LIKE ignores case, so cannot use it);
        elsewhere LIKE, whose collation-aware prefix match a byte range would not be."""
        column = AuditEntryRow.subject
        if self.engine.dialect.name == "sqlite":
            # Every string with the prefix sorts in [prefix, prefix + U+10FFFF).
            return (column >= prefix) & (column < prefix + "\U0010ffff")
        return column.startswith(prefix, autoescape=True)

    def verify_audit(self, anchors: Sequence[Anchor] = ()) -> AuditVerification:
        """Walk the audit chain in one snapshot, and check it still holds each of `anchors`
        (whose signatures the caller checked: `stack.spine.anchors.read`); every tampered
        entry is a finding naming its `seq` and kind (edited, re-hashed, forged, inserted,
        deleted, renumbered; truncated or rewritten since an anchor)."""
        with Session(self._reads) as session:
            return verify_chain(session, anchors)
