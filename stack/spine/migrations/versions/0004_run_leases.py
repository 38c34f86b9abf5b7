"""Pipeline runs: the lease of the process that drives each run.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_COLUMNS = ("lease_pid", "lease_host", "lease_started", "lease_renewed_at")


def upgrade() -> None:
    # Nullable: runs recorded before this revision have no lease, and are not judged.
    with op.batch_alter_table("pipeline_runs") as batch:
        batch.add_column(sa.Column("lease_pid", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("lease_host", sa.String(255), nullable=True))
        batch.add_column(sa.Column("lease_started", sa.String(100), nullable=True))
        batch.add_column(sa.Column("lease_renewed_at", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pipeline_runs") as batch:  # SQLite drops columns by copying
        for column in _COLUMNS:
            batch.drop_column(column)
