"""The fire path counts a job's runs going on (and looks for its buffered fire) on every fire:
an index on `(job_id, status)` keeps that one lookup however many fires the job has had,
where `(job_id, fire_at)` made it read every fire of the job.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_fires_job_id_status", "fires", ["job_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_fires_job_id_status", table_name="fires")
