"""Alerts per route: what each route was last told of each alert (firing, resolved), and when
a check saw an alert resolve (its row stays until every route was told).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("alert_states", sa.Column("resolved", sa.String(32), nullable=True))
    op.create_table(
        "alert_deliveries",
        sa.Column("key", sa.String(500), nullable=False),
        sa.Column("route", sa.String(100), nullable=False),
        sa.Column("route_name", sa.String(300), nullable=False),
        sa.Column("told", sa.String(20), nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("key", "route", name="pk_alert_deliveries"),
    )


def downgrade() -> None:
    op.drop_table("alert_deliveries")
    with op.batch_alter_table("alert_states") as batch:
        batch.drop_column("resolved")
