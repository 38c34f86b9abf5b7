"""SpineStore: the one door to the spine's tables, on SQLite or PostgreSQL.

Every write is one short transaction; an approval and its audit entry are written together or
not at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from stack.errors import ApprovalRefused, SpineError
from stack.spine import audit
from stack.spine.anchors import Anchor
from stack.spine.audit import AuditEntry, AuditVerification
from stack.spine.audit_check import verify as verify_chain
from stack.spine.engine import create_spine_engine, is_postgresql, reader
from stack.spine.lineage import LineageEdge, NodeKind, NodeRef
from stack.spine.locks import NamedLocks
from stack.spine.records import (
    Approval,
    GroundTruth,
    LifecycleEvent,
    MonitoringCheck,
    PipelineRunRecord,
    RunLease,
    StepRecord,
)
from stack.spine.schema import (
    ApprovalRow,
    AuditEntryRow,
    EventRow,
    GroundTruthRow,
    LineageEdgeRow,
    LineageNodeRow,
    MonitoringCheckRow,
    PipelineRunRow,
    StepRunRow,
)
from stack.spine.timeutil import from_text, now_utc, to_text

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any constant works; it only has to be the same for every mlstack process.
_MIGRATION_LOCK_KEY = 0x6D6C737461636B


class SpineStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._reads = reader(engine)
        #: Locks every process using this spine shares (`locks.hold(name)`).
        self.locks = NamedLocks(engine)

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> SpineStore:
        """Connect, and bring the schema to this version of mlstack (safe to race)."""
        store = cls(create_spine_engine(url))
        if migrate:
            store.migrate()
        return store

    def close(self) -> None:
        self.engine.dispose()

    # -- schema -------------------------------------------------------------------------

    def migrate(self) -> None:
        from alembic import command
        from alembic.config import Config
        from alembic.util.exc import CommandError

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.engine.begin() as connection:
                if is_postgresql(self.engine):  # one migrating process at a time
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                    )
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except CommandError as exc:
            raise SpineError(
                f"the spine store at {self.engine.url.render_as_string(hide_password=True)} "
                f"has a schema this mlstack does not know ({exc}); upgrade mlstack"
            ) from exc

    def schema_revision(self) -> str | None:
        with self.engine.connect() as connection:
            row = connection.execute(text("SELECT version_num FROM spine_schema_version")).first()
            return None if row is None else str(row[0])

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    # -- audit --------------------------------------------------------------------------

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
        actor: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[AuditEntry]:
        query = select(AuditEntryRow).order_by(AuditEntryRow.seq)
        if subject is not None:
            query = query.where(
                (AuditEntryRow.subject == subject) | AuditEntryRow.subject.like(f"{subject}@%")
            )
        if actor is not None:
            query = query.where(AuditEntryRow.actor == actor)
        if action is not None:
            query = query.where(AuditEntryRow.action == action)
        if since is not None:
            query = query.where(AuditEntryRow.at >= to_text(since))
        if until is not None:
            query = query.where(AuditEntryRow.at < to_text(until))
        with Session(self._reads) as session:
            return [audit.to_entry(row) for row in session.execute(query).scalars()]

    def verify_audit(self, anchors: Sequence[Anchor] = ()) -> AuditVerification:
        """Walk the audit chain in one snapshot, and check it still holds each of `anchors`
        (whose signatures the caller checked: `stack.spine.anchors.read`); every tampered
        entry is a finding naming its `seq` and kind (edited, re-hashed, forged, inserted,
        deleted, renumbered; truncated or rewritten since an anchor)."""
        with Session(self._reads) as session:
            return verify_chain(session, anchors)

    # -- lineage ------------------------------------------------------------------------

    def link(
        self,
        source: NodeRef,
        target: NodeRef,
        relation: str,
        *,
        attributes: Mapping[NodeRef, Mapping[str, Any]] | None = None,
    ) -> LineageEdge:
        """Record that `source` fed `target`; recording the same edge twice is harmless."""
        attributes = attributes or {}
        with self._transaction() as session:
            src = self._node(session, source, attributes.get(source))
            dst = self._node(session, target, attributes.get(target))
            exists = session.execute(
                select(LineageEdgeRow.id).where(
                    LineageEdgeRow.src_id == src.id,
                    LineageEdgeRow.dst_id == dst.id,
                    LineageEdgeRow.relation == relation,
                )
            ).first()
            if exists is None:
                session.add(
                    LineageEdgeRow(
                        src_id=src.id,
                        dst_id=dst.id,
                        relation=relation,
                        created_at=to_text(now_utc()),
                    )
                )
        return LineageEdge(source, target, relation)

    def node_attributes(self, node: NodeRef) -> dict[str, Any] | None:
        with Session(self._reads) as session:
            row = self._find_node(session, node)
            return None if row is None else dict(json.loads(row.attributes))

    def upstream(self, node: NodeRef) -> list[LineageEdge]:
        """Every edge that leads into `node`, transitively, nearest first."""
        return self._walk(node, upstream=True)

    def downstream(self, node: NodeRef) -> list[LineageEdge]:
        """Every edge that leads out of `node`, transitively, nearest first."""
        return self._walk(node, upstream=False)

    def _walk(self, start: NodeRef, *, upstream: bool) -> list[LineageEdge]:
        edges: list[LineageEdge] = []
        with Session(self._reads) as session:
            first = self._find_node(session, start)
            if first is None:
                return edges
            frontier, seen = [first.id], {first.id}
            near = LineageEdgeRow.dst_id if upstream else LineageEdgeRow.src_id
            while frontier:
                rows = (
                    session.execute(
                        select(LineageEdgeRow).where(near.in_(frontier)).order_by(LineageEdgeRow.id)
                    )
                    .scalars()
                    .all()
                )
                ids = {r.src_id for r in rows} | {r.dst_id for r in rows}
                nodes = {
                    n.id: NodeRef(NodeKind(n.kind), n.key)
                    for n in session.execute(
                        select(LineageNodeRow).where(LineageNodeRow.id.in_(ids))
                    ).scalars()
                }
                frontier = []
                for row in rows:
                    edges.append(LineageEdge(nodes[row.src_id], nodes[row.dst_id], row.relation))
                    next_id = row.src_id if upstream else row.dst_id
                    if next_id not in seen:
                        seen.add(next_id)
                        frontier.append(next_id)
        return edges

    @staticmethod
    def _find_node(session: Session, node: NodeRef) -> LineageNodeRow | None:
        return session.execute(
            select(LineageNodeRow).where(
                LineageNodeRow.kind == node.kind.value, LineageNodeRow.key == node.key
            )
        ).scalar_one_or_none()

    def _node(
        self, session: Session, node: NodeRef, attributes: Mapping[str, Any] | None
    ) -> LineageNodeRow:
        row = self._find_node(session, node)
        if row is None:
            row = LineageNodeRow(
                kind=node.kind.value,
                key=node.key,
                attributes=audit.canonical_payload(attributes or {}),
                created_at=to_text(now_utc()),
            )
            try:
                with session.begin_nested():
                    session.add(row)
            except IntegrityError:  # another writer created it first (PostgreSQL)
                found = self._find_node(session, node)
                assert found is not None
                row = found
        elif attributes:
            merged = {**json.loads(row.attributes), **attributes}
            row.attributes = audit.canonical_payload(merged)
        session.flush()
        return row

    # -- lifecycle events ----------------------------------------------------------------

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

    # -- approvals ----------------------------------------------------------------------

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

    # -- pipeline runs ------------------------------------------------------------------

    def start_pipeline_run(
        self,
        run_id: str,
        *,
        recipe: str,
        orchestrator: str,
        resumed_from: str | None = None,
        param_overrides: Sequence[str] = (),
        lease: RunLease | None = None,
    ) -> None:
        """Record a run as running; `param_overrides` are its `--param`s as typed, `lease`
        the process that drives it (None: nobody here does, e.g. a cluster's own run)."""
        with self._transaction() as session:
            session.add(
                PipelineRunRow(
                    run_id=run_id,
                    recipe=recipe,
                    orchestrator=orchestrator,
                    state="running",
                    resumed_from=resumed_from,
                    started_at=to_text(now_utc()),
                    param_overrides=json.dumps(list(param_overrides)) if param_overrides else None,
                    lease_pid=lease.pid if lease else None,
                    lease_host=lease.host if lease else None,
                    lease_started=lease.started if lease else None,
                    lease_renewed_at=to_text(lease.renewed_at) if lease else None,
                )
            )

    def renew_lease(self, run_id: str, lease: RunLease) -> bool:
        """Move the lease's time to `lease.renewed_at` if the run is still running under
        this very lease; False otherwise (finished, abandoned, or taken over)."""
        with self._transaction() as session:
            row = session.get(PipelineRunRow, run_id)
            if row is None or row.state != "running" or not _held_by(row, lease):
                return False
            row.lease_renewed_at = to_text(lease.renewed_at)
            return True

    def abandon_pipeline_run(
        self, run_id: str, *, lease: RunLease | None, reason: str, actor: str
    ) -> bool:
        """Record that run `run_id`'s process died: the run `abandoned`, its running steps
        `failed` with `reason`, and a `run.abandoned` audit entry, in one transaction.

        Only while the run is still running under `lease` (the one judged dead): False,
        changing nothing, when it finished or was abandoned meanwhile (two repairs race)."""
        moment = to_text(now_utc())
        with self._transaction() as session:
            audit.lock_head(session)  # racing repairs are answered one after the other
            row = session.get(PipelineRunRow, run_id)
            if row is None:
                raise SpineError(f"no pipeline run {run_id!r} in the spine")
            if row.state != "running" or (lease is not None and not _held_by(row, lease)):
                return False
            interrupted = [
                step
                for step in session.execute(
                    select(StepRunRow).where(
                        StepRunRow.run_id == run_id, StepRunRow.status == "running"
                    )
                ).scalars()
            ]
            for step in interrupted:
                step.status, step.error, step.finished_at = "failed", reason, moment
            at = interrupted[0].step if interrupted else "between steps"
            row.state, row.error, row.finished_at = "abandoned", f"{at}: {reason}", moment
            audit.append(
                session,
                actor=actor,
                action="run.abandoned",
                subject=f"run:{run_id}",
                reason=reason,
                payload={
                    "recipe": row.recipe,
                    "interrupted_steps": [s.step for s in interrupted],
                    "lease": _lease_json(row),
                },
            )
            return True

    def record_step(
        self,
        run_id: str,
        step: str,
        *,
        status: str,
        started_at: datetime,
        finished_at: datetime | None = None,
        output_uri: str | None = None,
        output_digest: str | None = None,
        error: str | None = None,
    ) -> None:
        """Create or update the record of one step of a pipeline run."""
        with self._transaction() as session:
            row = session.execute(
                select(StepRunRow).where(StepRunRow.run_id == run_id, StepRunRow.step == step)
            ).scalar_one_or_none()
            if row is None:
                row = StepRunRow(run_id=run_id, step=step, started_at=to_text(started_at))
                session.add(row)
            row.status = status
            row.finished_at = to_text(finished_at) if finished_at else None
            row.output_uri, row.output_digest, row.error = output_uri, output_digest, error

    def finish_pipeline_run(self, run_id: str, *, state: str, error: str | None = None) -> None:
        with self._transaction() as session:
            row = session.get(PipelineRunRow, run_id)
            if row is None:
                raise SpineError(f"no pipeline run {run_id!r} in the spine")
            row.state, row.error, row.finished_at = state, error, to_text(now_utc())

    def pipeline_run(self, run_id: str) -> PipelineRunRecord | None:
        with Session(self._reads) as session:
            row = session.get(PipelineRunRow, run_id)
            if row is None:
                return None
            steps = session.execute(
                select(StepRunRow).where(StepRunRow.run_id == run_id).order_by(StepRunRow.id)
            ).scalars()
            return _run_record(row, list(steps))

    def pipeline_runs(
        self,
        *,
        recipe: str | None = None,
        state: str | None = None,
        finished_since: datetime | None = None,
        limit: int | None = 20,
    ) -> list[PipelineRunRecord]:
        """The latest runs (of `recipe`, in `state`, ended at or after `finished_since`),
        newest first; `limit` None for all."""
        query = select(PipelineRunRow).order_by(PipelineRunRow.started_at.desc()).limit(limit)
        if recipe is not None:
            query = query.where(PipelineRunRow.recipe == recipe)
        if state is not None:
            query = query.where(PipelineRunRow.state == state)
        if finished_since is not None:
            query = query.where(PipelineRunRow.finished_at >= to_text(finished_since))
        with Session(self._reads) as session:
            rows = session.execute(query).scalars().all()
        return [run for row in rows if (run := self.pipeline_run(row.run_id)) is not None]

    # -- monitoring -----------------------------------------------------------------------

    def record_labels(self, labels: list[GroundTruth]) -> int:
        """Store late labels all together or not at all; returns how many were stored."""
        moment = to_text(now_utc())
        with self._transaction() as session:
            session.add_all(
                GroundTruthRow(
                    model=g.model,
                    request_id=g.request_id,
                    row=g.row,
                    entity=audit.canonical_payload(dict(g.entity)) if g.entity else None,
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


def _held_by(row: PipelineRunRow, lease: RunLease) -> bool:
    return (row.lease_pid, row.lease_host, row.lease_started) == (
        lease.pid,
        lease.host,
        lease.started,
    )


def _lease_of(row: PipelineRunRow) -> RunLease | None:
    if row.lease_pid is None or row.lease_host is None or row.lease_renewed_at is None:
        return None
    return RunLease(
        row.lease_pid, row.lease_host, row.lease_started or "", from_text(row.lease_renewed_at)
    )


def _lease_json(row: PipelineRunRow) -> dict[str, Any] | None:
    if row.lease_pid is None:
        return None
    return {
        "pid": row.lease_pid,
        "host": row.lease_host,
        "started": row.lease_started,
        "renewed_at": row.lease_renewed_at,
    }


def _run_record(row: PipelineRunRow, steps: list[StepRunRow]) -> PipelineRunRecord:
    return PipelineRunRecord(
        run_id=row.run_id,
        recipe=row.recipe,
        orchestrator=row.orchestrator,
        state=row.state,
        resumed_from=row.resumed_from,
        started_at=from_text(row.started_at),
        finished_at=from_text(row.finished_at) if row.finished_at else None,
        error=row.error,
        param_overrides=tuple(json.loads(row.param_overrides)) if row.param_overrides else (),
        lease=_lease_of(row),
        steps=tuple(
            StepRecord(
                step=s.step,
                status=s.status,
                started_at=from_text(s.started_at),
                finished_at=from_text(s.finished_at) if s.finished_at else None,
                output_uri=s.output_uri,
                output_digest=s.output_digest,
                error=s.error,
            )
            for s in steps
        ),
    )
