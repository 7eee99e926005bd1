"""Outbox operations get an identity that never repeats (`op_id`), replacing the per-row
`generation` that restarted at 1 when a job's row was created afresh; jobs record the fire NAS
last acknowledged (`nas_armed_at`).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from app.store.tables import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("op_id", sa.String(32), nullable=True))
    # Operations queued before the upgrade: any value unique per row will do, they are
    # pushed again and acknowledged under it.
    op.execute(
        "UPDATE outbox SET op_id = 'pre0004-' || CAST(generation AS VARCHAR(12)) || '-'"
        " || CAST(LENGTH(job_id) AS VARCHAR(4))"
    )
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column("op_id", existing_type=sa.String(32), nullable=False)
        batch.drop_column("generation")
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("nas_armed_at", UTCDateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("nas_armed_at")
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("generation", sa.Integer, nullable=False, server_default="1"))
        batch.drop_column("op_id")
