"""slack replays: the signed Slack requests already received, so a replay is not run again

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "slack_requests",
        sa.Column("signature_hash", sa.String(length=64), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("replays", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("signature_hash", name=op.f("pk_slack_requests")),
    )
    op.create_index(op.f("ix_slack_requests_signed_at"), "slack_requests", ["signed_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_slack_requests_signed_at"), table_name="slack_requests")
    op.drop_table("slack_requests")
