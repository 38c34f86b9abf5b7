"""Pipeline runs: the `--param` overrides each run was started with.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, so runs recorded before this revision read as run with no overrides.
    op.add_column("pipeline_runs", sa.Column("param_overrides", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pipeline_runs") as batch:  # SQLite drops columns by copying
        batch.drop_column("param_overrides")
