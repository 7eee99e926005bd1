"""Time semantics: misfire grace, catch-up and overlap policies, coalesced slots, retention.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

from app.store.tables import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("misfire_grace_seconds", sa.Integer, nullable=True))
        batch.add_column(
            sa.Column("catchup", sa.String(16), nullable=False, server_default="run_once")
        )
        batch.add_column(sa.Column("overlap", sa.String(16), nullable=False, server_default="skip"))
        batch.add_column(sa.Column("completed_at", UTCDateTime, nullable=True))
    with op.batch_alter_table("fires") as batch:
        batch.add_column(sa.Column("slots", sa.Integer, nullable=False, server_default="1"))
    op.create_index("ix_jobs_state_completed_at", "jobs", ["state", "completed_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_state_completed_at", table_name="jobs")
    with op.batch_alter_table("fires") as batch:
        batch.drop_column("slots")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("completed_at")
        batch.drop_column("overlap")
        batch.drop_column("catchup")
        batch.drop_column("misfire_grace_seconds")
