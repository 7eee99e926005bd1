"""Outbox operations NAS refused for good (a 4xx other than 401/403) are parked: the
maintenance drain leaves them to the next reconcile instead of retrying every few seconds.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

from app.store.tables import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Operations queued before the upgrade are not parked: they keep their backoff.
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("parked_at", UTCDateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("parked_at")
