"""observed deployments: every ECS deployment and scaling, the bot's or another actor's

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 19:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deploy_records") as batch:
        batch.add_column(sa.Column("source", sa.String(length=16), server_default="bot", nullable=False))
        batch.add_column(sa.Column("ecs_deployment_id", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("image_commit", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("from_count", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("to_count", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("watch_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("watch_state", sa.String(length=16), nullable=True))
        batch.create_unique_constraint(op.f("uq_deploy_records_ecs_deployment_id"), ["ecs_deployment_id"])
    with op.batch_alter_table("alarm_threads") as batch:
        batch.add_column(sa.Column("after_deployment", sa.JSON(), nullable=True))
    op.create_table(
        "observed_services",
        sa.Column("env", sa.String(length=32), nullable=False),
        sa.Column("desired_count", sa.Integer(), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("env", name=op.f("pk_observed_services")),
    )


def downgrade() -> None:
    op.drop_table("observed_services")
    with op.batch_alter_table("alarm_threads") as batch:
        batch.drop_column("after_deployment")
    with op.batch_alter_table("deploy_records") as batch:
        batch.drop_constraint(op.f("uq_deploy_records_ecs_deployment_id"), type_="unique")
        for column in (
            "watch_state",
            "watch_until",
            "to_count",
            "from_count",
            "image_commit",
            "ecs_deployment_id",
            "source",
        ):
            batch.drop_column(column)
