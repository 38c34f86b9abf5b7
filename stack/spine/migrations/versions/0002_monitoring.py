"""Monitoring: late ground truth, and the result of every monitoring check.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "ground_truth",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("entity", sa.Text(), nullable=True),
        sa.Column("observed_at", TS, nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("source", sa.String(400), nullable=False),
        sa.Column("ingested_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ground_truth"),
    )
    op.create_index("ix_ground_truth_model", "ground_truth", ["model", "observed_at"])
    op.create_index("ix_ground_truth_request", "ground_truth", ["request_id"])
    op.create_table(
        "monitoring_checks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.String(300), nullable=False),
        sa.Column("endpoint", sa.String(200), nullable=False),
        sa.Column("window_start", TS, nullable=False),
        sa.Column("window_end", TS, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("report_uri", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_monitoring_checks"),
    )
    op.create_index("ix_monitoring_checks_model", "monitoring_checks", ["model", "at"])


def downgrade() -> None:
    op.drop_table("monitoring_checks")
    op.drop_table("ground_truth")
