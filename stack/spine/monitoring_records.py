"""Monitoring's tables: late labels (ground truth) and each check's result."""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextlib import ExitStack
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from stack.spine.audit import canonical_payload
from stack.spine.locks import NamedLocks
from stack.spine.records import GroundTruth, MonitoringCheck
from stack.spine.schema import GroundTruthRow, MonitoringCheckRow
from stack.spine.tables import SpineTables
from stack.spine.timeutil import from_text, now_utc, to_text


class MonitoringRecords(SpineTables):
    def record_labels(self, labels: list[GroundTruth]) -> int:
        """Store late labels all together or not at all; returns how many were stored. A
        label naming a request id (and row) replaces the one stored for it before (the last
        ingest wins: a file ingested twice stores its labels once; within `labels`, the last
        of a pair wins); labels by entity key are added. One label per prediction is the
        database's rule (a unique index); ingests of one model take turns (the spine lock
        `labels of <model>`), so one that races another replaces what it stored."""
        labels = _last_per_prediction(labels)
        with ExitStack() as held:
            for model in sorted({g.model for g in labels if g.request_id is not None}):
                held.enter_context(NamedLocks(self.engine).hold(f"labels of {model}"))
            self._replace_labels(labels)
        return len(labels)

    def _replace_labels(self, labels: list[GroundTruth]) -> None:
        moment = to_text(now_utc())
        with self._transaction() as session:
            for model, keys in _request_keys(labels).items():
                _forget_labels(session, model, keys)
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
        return [_check(r) for r in rows]

    def latest_checks(self) -> list[MonitoringCheck]:
        """Each model's latest run on each endpoint: the checks that share the window end of
        the newest check there, the newest one per version (a version no longer checked
        there drops out, as from a textfile the run rewrote); by model, endpoint, version."""
        newest = select(func.max(MonitoringCheckRow.id)).group_by(
            MonitoringCheckRow.model, MonitoringCheckRow.endpoint
        )
        last = select(
            MonitoringCheckRow.model, MonitoringCheckRow.endpoint, MonitoringCheckRow.window_end
        ).where(MonitoringCheckRow.id.in_(newest))
        with Session(self._reads) as session:
            runs = {tuple(row) for row in session.execute(last)}
            rows = [
                row
                for row in session.execute(
                    select(MonitoringCheckRow)
                    .order_by(MonitoringCheckRow.id)
                    .where(
                        MonitoringCheckRow.model.in_({model for model, _, _ in runs}),
                        MonitoringCheckRow.window_end.in_({end for _, _, end in runs}),
                    )
                ).scalars()
                if (row.model, row.endpoint, row.window_end) in runs
            ]
        kept = {(r.model, r.endpoint, r.version): r for r in rows}  # the newest per version
        return [_check(kept[key]) for key in sorted(kept)]


def _last_per_prediction(labels: list[GroundTruth]) -> list[GroundTruth]:
    """`labels` with one per (model, request id, row), the last given; labels by entity key
    all kept, in order."""
    last = {
        (g.model, g.request_id, g.row): i for i, g in enumerate(labels) if g.request_id is not None
    }
    return [
        g
        for i, g in enumerate(labels)
        if g.request_id is None or last[(g.model, g.request_id, g.row)] == i
    ]


def _request_keys(labels: list[GroundTruth]) -> dict[str, set[tuple[str, int]]]:
    """The (request id, row) pairs the labels name, by model."""
    keys: dict[str, set[tuple[str, int]]] = {}
    for label in labels:
        if label.request_id is not None:
            keys.setdefault(label.model, set()).add((label.request_id, label.row))
    return keys


def _forget_labels(session: Session, model: str, keys: set[tuple[str, int]]) -> None:
    """Delete the stored labels of `model` for these (request id, row) pairs, in batches of
    ids small enough for any database's limit on bound parameters."""
    ids = sorted({request_id for request_id, _ in keys})
    for start in range(0, len(ids), _BATCH):
        chunk = ids[start : start + _BATCH]
        stored = session.execute(
            select(GroundTruthRow.id, GroundTruthRow.request_id, GroundTruthRow.row).where(
                GroundTruthRow.model == model, GroundTruthRow.request_id.in_(chunk)
            )
        ).all()
        doomed = [row_id for row_id, request_id, row in stored if (request_id, row) in keys]
        if doomed:
            session.execute(delete(GroundTruthRow).where(GroundTruthRow.id.in_(doomed)))


_BATCH = 500


def _check(row: MonitoringCheckRow) -> MonitoringCheck:
    return MonitoringCheck(
        id=row.id,
        model=row.model,
        version=row.version,
        endpoint=row.endpoint,
        window_start=from_text(row.window_start),
        window_end=from_text(row.window_end),
        at=from_text(row.at),
        status=row.status,
        result=json.loads(row.result),
        report_uri=row.report_uri,
    )
