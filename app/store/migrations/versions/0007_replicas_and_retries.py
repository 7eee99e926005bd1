"""Replicas that agree, runs that get a second chance: the outbox row is claimed by one
pusher at a time (`claimed_by`, `claimed_until`); housekeeping rounds one replica at a time
runs hold a lease row (`leases`); jobs have a retry policy (`retry_*`), and a run awaiting
its next attempt has its `retry_at` and its earlier attempts (`previous_attempts`).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10
"""

import sqlalchemy as sa
from alembic import op

from app.store.tables import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Operations queued before the upgrade are unclaimed: any replica may push them.
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(128), nullable=True))
        batch.add_column(sa.Column("claimed_until", UTCDateTime, nullable=True))
    # Existing jobs keep their behaviour: one attempt, never retried.
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("retry_max_attempts", sa.Integer, nullable=False, server_default="1")
        )
        batch.add_column(
            sa.Column("retry_backoff_seconds", sa.Integer, nullable=False, server_default="10")
        )
        batch.add_column(
            sa.Column("retry_max_backoff_seconds", sa.Integer, nullable=False, server_default="600")
        )
    with op.batch_alter_table("fires") as batch:
        batch.add_column(sa.Column("retry_at", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("previous_attempts", sa.JSON, nullable=True))
    op.create_index("ix_fires_status_retry_at", "fires", ["status", "retry_at"])
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_index("ix_fires_status_retry_at", table_name="fires")
    with op.batch_alter_table("fires") as batch:
        batch.drop_column("previous_attempts")
        batch.drop_column("retry_at")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("retry_max_backoff_seconds")
        batch.drop_column("retry_backoff_seconds")
        batch.drop_column("retry_max_attempts")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("claimed_until")
        batch.drop_column("claimed_by")
