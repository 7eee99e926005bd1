"""Fire tokens bound to the one fire they were first presented with (`fire_tokens`), so a
token captured in transit cannot admit another job or time.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from app.store.tables import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fire_tokens",
        sa.Column("token_id", sa.String(200), primary_key=True),
        sa.Column("dedup_key", sa.String(300), nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_fire_tokens_expires_at", "fire_tokens", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_fire_tokens_expires_at", table_name="fire_tokens")
    op.drop_table("fire_tokens")
