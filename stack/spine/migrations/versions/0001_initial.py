"""The first spine schema: audit chain, lineage, events, approvals, pipeline runs.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.String(32)
GENESIS_HASH = "0" * 64


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_entries"),
    )
    op.create_index("ix_audit_entries_subject", "audit_entries", ["subject"])
    op.create_index("ix_audit_entries_actor", "audit_entries", ["actor"])
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_head"),
    )
    # The head exists from the start, so the first appenders lock a row instead of racing to
    # insert one.
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": GENESIS_HASH}])
    op.create_table(
        "lineage_nodes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("key", sa.String(400), nullable=False),
        sa.Column("attributes", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_lineage_nodes"),
        sa.UniqueConstraint("kind", "key", name="uq_lineage_nodes_kind_key"),
    )
    op.create_table(
        "lineage_edges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("src_id", sa.Integer(), nullable=False),
        sa.Column("dst_id", sa.Integer(), nullable=False),
        sa.Column("relation", sa.String(60), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["src_id"], ["lineage_nodes.id"], name="fk_lineage_edges_src_id_lineage_nodes"
        ),
        sa.ForeignKeyConstraint(
            ["dst_id"], ["lineage_nodes.id"], name="fk_lineage_edges_dst_id_lineage_nodes"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_lineage_edges"),
        sa.UniqueConstraint("src_id", "dst_id", "relation", name="uq_lineage_edges_src_dst_rel"),
    )
    op.create_index("ix_lineage_edges_dst", "lineage_edges", ["dst_id"])
    op.create_table(
        "lifecycle_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_lifecycle_events"),
    )
    op.create_index("ix_lifecycle_events_subject", "lifecycle_events", ["subject"])
    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("target_state", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("decision", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_approvals"),
    )
    op.create_index("ix_approvals_subject", "approvals", ["subject", "target_state"])
    op.create_table(
        "pipeline_runs",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("recipe", sa.String(200), nullable=False),
        sa.Column("orchestrator", sa.String(60), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("resumed_from", sa.String(64), nullable=True),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", name="pk_pipeline_runs"),
    )
    op.create_table(
        "step_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("step", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("output_uri", sa.Text(), nullable=True),
        sa.Column("output_digest", sa.String(64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["pipeline_runs.run_id"], name="fk_step_runs_run_id_pipeline_runs"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_step_runs"),
        sa.UniqueConstraint("run_id", "step", name="uq_step_runs_run_step"),
    )


def downgrade() -> None:
    for table in (
        "step_runs",
        "pipeline_runs",
        "approvals",
        "lifecycle_events",
        "lineage_edges",
        "lineage_nodes",
        "audit_head",
        "audit_entries",
    ):
        op.drop_table(table)
