"""audit verb index: the keying marker is looked up by its verb on every anchor round

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 08:30:00
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_audit_events_verb"), "audit_events", ["verb"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_audit_events_verb"), table_name="audit_events")
