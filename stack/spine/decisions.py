"""Lifecycle events as they fired, and approvals (each written with its audit entry)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from stack.errors import ApprovalRefused
from stack.spine import audit
from stack.spine.records import Approval, LifecycleEvent
from stack.spine.schema import ApprovalRow, EventRow
from stack.spine.tables import SpineTables
from stack.spine.timeutil import from_text, now_utc, to_text


class Decisions(SpineTables):
    def record_event(self, name: str, subject: str, payload: Mapping[str, Any]) -> None:
        with self._transaction() as session:
            session.add(
                EventRow(
                    name=name,
                    subject=subject,
                    payload=audit.canonical_payload(payload),
                    at=to_text(now_utc()),
                )
            )

    def events(
        self, *, subject: str | None = None, name: str | None = None
    ) -> list[LifecycleEvent]:
        query = select(EventRow).order_by(EventRow.id)
        if subject is not None:
            query = query.where(EventRow.subject == subject)
        if name is not None:
            query = query.where(EventRow.name == name)
        with Session(self._reads) as session:
            return [
                LifecycleEvent(r.name, r.subject, json.loads(r.payload), from_text(r.at))
                for r in session.execute(query).scalars()
            ]

    def record_approval(
        self, *, subject: str, target_state: str, actor: str, decision: str, reason: str = ""
    ) -> Approval:
        """Store an approval (or rejection) and its audit entry in one transaction."""
        if decision not in ("approved", "rejected"):
            raise ValueError(f"decision must be 'approved' or 'rejected', not {decision!r}")
        moment = to_text(now_utc())
        with self._transaction() as session:
            audit.lock_head(session)  # two approvers racing are answered one after the other
            earlier = session.execute(
                select(ApprovalRow.id).where(
                    ApprovalRow.subject == subject,
                    ApprovalRow.target_state == target_state,
                    ApprovalRow.actor == actor,
                    ApprovalRow.decision == decision,
                )
            ).first()
            if earlier is not None:
                raise ApprovalRefused(f"{actor} already {decision} {subject} for {target_state}")
            session.add(
                ApprovalRow(
                    subject=subject,
                    target_state=target_state,
                    actor=actor,
                    decision=decision,
                    reason=reason,
                    at=moment,
                )
            )
            audit.append(
                session,
                actor=actor,
                action=f"approval.{decision}",
                subject=subject,
                reason=reason,
                payload={"target_state": target_state},
            )
        return Approval(subject, target_state, actor, decision, reason, from_text(moment))

    def approvals(self, subject: str, target_state: str | None = None) -> list[Approval]:
        query = select(ApprovalRow).where(ApprovalRow.subject == subject).order_by(ApprovalRow.id)
        if target_state is not None:
            query = query.where(ApprovalRow.target_state == target_state)
        with Session(self._reads) as session:
            return [
                Approval(r.subject, r.target_state, r.actor, r.decision, r.reason, from_text(r.at))
                for r in session.execute(query).scalars()
            ]
