"""Monitoring's tables: late labels (ground truth) and each check's result."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from stack.spine.audit import canonical_payload
from stack.spine.records import GroundTruth, MonitoringCheck
from stack.spine.schema import GroundTruthRow, MonitoringCheckRow
from stack.spine.tables import SpineTables
from stack.spine.timeutil import from_text, now_utc, to_text


class MonitoringRecords(SpineTables):
    def record_labels(self, labels: list[GroundTruth]) -> int:
        """Store late labels all together or not at all; returns how many were stored."""
        moment = to_text(now_utc())
        with self._transaction() as session:
            session.add_all(
                GroundTruthRow(
                    model=g.model,
                    request_id=g.request_id,
                    row=g.row,
                    entity=canonical_payload(dict(g.entity)) if g.entity else None,
                    observed_at=to_text(g.observed_at),
                    label=json.dumps(g.label),
                    source=g.source,
                    ingested_at=moment,
                )
                for g in labels
            )
        return len(labels)

    def labels(self, model: str, *, since: datetime | None = None) -> list[GroundTruth]:
        """Labels of `model` observed at or after `since`, oldest first (a later label for
        the same prediction corrects an earlier one)."""
        query = select(GroundTruthRow).where(GroundTruthRow.model == model)
        if since is not None:
            query = query.where(GroundTruthRow.observed_at >= to_text(since))
        with Session(self._reads) as session:
            rows = session.execute(query.order_by(GroundTruthRow.id)).scalars().all()
        return [
            GroundTruth(
                model=r.model,
                label=json.loads(r.label),
                observed_at=from_text(r.observed_at),
                source=r.source,
                request_id=r.request_id,
                row=r.row,
                entity=json.loads(r.entity) if r.entity else None,
            )
            for r in rows
        ]

    def record_check(
        self,
        *,
        model: str,
        version: str,
        endpoint: str,
        window: tuple[datetime, datetime],
        status: str,
        result: Mapping[str, Any],
        report_uri: str | None = None,
    ) -> int:
        """Store one monitoring check's result; returns its id."""
        row = MonitoringCheckRow(
            model=model,
            version=version,
            endpoint=endpoint,
            window_start=to_text(window[0]),
            window_end=to_text(window[1]),
            at=to_text(now_utc()),
            status=status,
            result=json.dumps(result, sort_keys=True, default=str),
            report_uri=report_uri,
        )
        with self._transaction() as session:
            session.add(row)
            session.flush()
            return row.id

    def checks(
        self, model: str, *, version: str | None = None, limit: int = 50
    ) -> list[MonitoringCheck]:
        """The latest checks of `model` (of one version when given), newest first."""
        query = select(MonitoringCheckRow).where(MonitoringCheckRow.model == model)
        if version is not None:
            query = query.where(MonitoringCheckRow.version == version)
        query = query.order_by(MonitoringCheckRow.id.desc()).limit(limit)
        with Session(self._reads) as session:
            rows = session.execute(query).scalars().all()
        return [
            MonitoringCheck(
                id=r.id,
                model=r.model,
                version=r.version,
                endpoint=r.endpoint,
                window_start=from_text(r.window_start),
                window_end=from_text(r.window_end),
                at=from_text(r.at),
                status=r.status,
                result=json.loads(r.result),
                report_uri=r.report_uri,
            )
            for r in rows
        ]
