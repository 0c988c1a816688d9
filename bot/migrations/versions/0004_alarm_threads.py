"""alarm threads: one Slack thread per alarm, the root message edited to the current state

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 20:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alarm_threads",
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("short_id", sa.String(length=12), nullable=False),
        sa.Column("env", sa.String(length=32), nullable=True),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("root_ts", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=100), nullable=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("alarm_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_by", sa.String(length=64), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_alarm_threads")),
        sa.UniqueConstraint("short_id", name=op.f("uq_alarm_threads_short_id")),
    )
    op.create_index("ix_alarm_threads_state_env", "alarm_threads", ["state", "env"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_alarm_threads_state_env", table_name="alarm_threads")
    op.drop_table("alarm_threads")
