"""Audit entries by action and subject: what served when reads a model's state changes
without visiting its year of monitoring entries.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_entries_action", "audit_entries", ["action", "subject"])


def downgrade() -> None:
    op.drop_index("ix_audit_entries_action", table_name="audit_entries")
