"""Job ids up to 200 characters, as the fire contract allows (a NAS arm may name any job).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TABLES = {"jobs": "id", "fires": "job_id", "outbox": "job_id"}


def upgrade() -> None:
    for table, column in _TABLES.items():
        with op.batch_alter_table(table) as batch:
            batch.alter_column(column, type_=sa.String(200), existing_type=sa.String(32))
            if table == "fires":  # "catchup:" + job id + ":" + instant
                batch.alter_column("dedup_key", type_=sa.String(300), existing_type=sa.String(200))


def downgrade() -> None:
    for table, column in _TABLES.items():
        with op.batch_alter_table(table) as batch:
            batch.alter_column(column, type_=sa.String(32), existing_type=sa.String(200))
            if table == "fires":
                batch.alter_column("dedup_key", type_=sa.String(200), existing_type=sa.String(300))
