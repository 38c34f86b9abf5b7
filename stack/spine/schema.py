"""Tables of the spine store. Changes go through an Alembic migration in `migrations/`."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Explicit constraint names keep migrations identical on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Timestamps are ISO-8601 UTC text: exact on every backend, which the audit hashes rely on.
Timestamp = String(32)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class AuditEntryRow(Base):
    """One audit entry; `hash` covers every other column and the previous entry's hash."""

    __tablename__ = "audit_entries"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(Timestamp)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(String(300))
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_audit_entries_subject", "subject"),
        Index("ix_audit_entries_actor", "actor"),
        # What served when: a model's state changes among its year of monitoring entries.
        Index("ix_audit_entries_action", "action", "subject"),
    )


class AuditHeadRow(Base):
    """The single row naming the last entry: appends lock it, so the chain never forks."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class LineageNodeRow(Base):
    __tablename__ = "lineage_nodes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(400))
    attributes: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[str] = mapped_column(Timestamp)

    __table_args__ = (UniqueConstraint("kind", "key", name="uq_lineage_nodes_kind_key"),)


class LineageEdgeRow(Base):
    __tablename__ = "lineage_edges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    src_id: Mapped[int] = mapped_column(ForeignKey("lineage_nodes.id"))
    dst_id: Mapped[int] = mapped_column(ForeignKey("lineage_nodes.id"))
    relation: Mapped[str] = mapped_column(String(60))
    created_at: Mapped[str] = mapped_column(Timestamp)

    __table_args__ = (
        UniqueConstraint("src_id", "dst_id", "relation", name="uq_lineage_edges_src_dst_rel"),
        Index("ix_lineage_edges_dst", "dst_id"),
    )


class EventRow(Base):
    """A lifecycle event as it fired (run finished, promotion requested, drift detected, …)."""

    __tablename__ = "lifecycle_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    subject: Mapped[str] = mapped_column(String(300))
    payload: Mapped[str] = mapped_column(Text)
    at: Mapped[str] = mapped_column(Timestamp)

    __table_args__ = (Index("ix_lifecycle_events_subject", "subject"),)


class ApprovalRow(Base):
    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject: Mapped[str] = mapped_column(String(300))
    target_state: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(200))
    decision: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[str] = mapped_column(Timestamp)

    __table_args__ = (Index("ix_approvals_subject", "subject", "target_state"),)


class PipelineRunRow(Base):
    __tablename__ = "pipeline_runs"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    recipe: Mapped[str] = mapped_column(String(200))
    orchestrator: Mapped[str] = mapped_column(String(60))
    state: Mapped[str] = mapped_column(String(20))
    resumed_from: Mapped[str | None] = mapped_column(String(64), nullable=True)
    started_at: Mapped[str] = mapped_column(Timestamp)
    finished_at: Mapped[str | None] = mapped_column(Timestamp, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # JSON list of the run's `--param STEP.NAME=VALUE` overrides, as typed; NULL for none.
    param_overrides: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The lease of the process driving the run (see stack.orchestration.lease); NULL for
    # runs recorded before leases, or started by a task that does not drive them.
    lease_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    lease_host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    lease_started: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lease_renewed_at: Mapped[str | None] = mapped_column(Timestamp, nullable=True)


class StepRunRow(Base):
    __tablename__ = "step_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("pipeline_runs.run_id"))
    step: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[str] = mapped_column(Timestamp)
    finished_at: Mapped[str | None] = mapped_column(Timestamp, nullable=True)
    output_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    output_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (UniqueConstraint("run_id", "step", name="uq_step_runs_run_step"),)


class GroundTruthRow(Base):
    """A label that arrived after the prediction: matched by request id (and row of the
    request), or by entity key and the time it was observed."""

    __tablename__ = "ground_truth"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(200))
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    row: Mapped[int] = mapped_column(Integer, default=0)
    entity: Mapped[str | None] = mapped_column(Text, nullable=True)  # canonical JSON
    observed_at: Mapped[str] = mapped_column(Timestamp)
    label: Mapped[str] = mapped_column(Text)  # JSON
    source: Mapped[str] = mapped_column(String(400))
    ingested_at: Mapped[str] = mapped_column(Timestamp)

    __table_args__ = (
        Index("ix_ground_truth_model", "model", "observed_at"),
        Index("ix_ground_truth_request", "request_id"),
        # one label per prediction (migration 0008); labels by entity key are not keyed
        Index(
            "ux_ground_truth_prediction",
            "model",
            "request_id",
            "row",
            unique=True,
            sqlite_where=text("request_id IS NOT NULL"),
            postgresql_where=text("request_id IS NOT NULL"),
        ),
    )


class MonitoringCheckRow(Base):
    """One monitoring check of one model version on one endpoint over one window."""

    __tablename__ = "monitoring_checks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(300))
    endpoint: Mapped[str] = mapped_column(String(200))
    window_start: Mapped[str] = mapped_column(Timestamp)
    window_end: Mapped[str] = mapped_column(Timestamp)
    at: Mapped[str] = mapped_column(Timestamp)
    status: Mapped[str] = mapped_column(String(20))  # ok | breach | empty | error
    result: Mapped[str] = mapped_column(Text)  # JSON
    report_uri: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("ix_monitoring_checks_model", "model", "at"),)


class AlertStateRow(Base):
    """An alert mlstack notified and that has not resolved yet: one notification per breach
    (`stack/observability/alerts.py`), a resolved notice when its row goes."""

    __tablename__ = "alert_states"

    key: Mapped[str] = mapped_column(String(500), primary_key=True)  # name + labels
    name: Mapped[str] = mapped_column(String(200))
    labels: Mapped[str] = mapped_column(Text)  # JSON
    since: Mapped[str] = mapped_column(Timestamp)
    # when a check saw it resolved; the row stays until every route was told so
    resolved: Mapped[str | None] = mapped_column(Timestamp, nullable=True)


class AlertDeliveryRow(Base):
    """What one route (an Apprise URL, a webhook, Alertmanager) was last told of one alert:
    `firing` or `resolved`; each check sends each route only what it was not told yet."""

    __tablename__ = "alert_deliveries"

    key: Mapped[str] = mapped_column(String(500), primary_key=True)  # alert_states.key
    route: Mapped[str] = mapped_column(String(100), primary_key=True)  # a digest of its URL
    route_name: Mapped[str] = mapped_column(String(300))  # the URL without its secrets
    told: Mapped[str] = mapped_column(String(20))  # firing | resolved
    at: Mapped[str] = mapped_column(Timestamp)
