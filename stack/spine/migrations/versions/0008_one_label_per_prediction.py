"""One label per prediction, kept by the database: a unique index on (model, request_id,
row) over the labels that name a request. Labels stored twice before it (two ingests at
once on PostgreSQL could each delete nothing and insert) keep the later one.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_NAMED = sa.text("request_id IS NOT NULL")


def upgrade() -> None:
    op.execute(
        "DELETE FROM ground_truth WHERE request_id IS NOT NULL AND id NOT IN ("
        "SELECT MAX(id) FROM ground_truth WHERE request_id IS NOT NULL "
        "GROUP BY model, request_id, row)"
    )
    op.create_index(
        "ux_ground_truth_prediction",
        "ground_truth",
        ["model", "request_id", "row"],
        unique=True,
        sqlite_where=_NAMED,
        postgresql_where=_NAMED,
    )


def downgrade() -> None:
    op.drop_index("ux_ground_truth_prediction", table_name="ground_truth")
