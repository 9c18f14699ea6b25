"""Jobs name the model they run on, so each model's worker claims only its own jobs.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # "" for jobs queued before this migration: the default model's worker takes them.
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("model", sa.String(255), nullable=False, server_default=""))
    op.create_index("ix_jobs_model_queue", "jobs", ["model", "status", "priority", "created"])


def downgrade() -> None:
    op.drop_index("ix_jobs_model_queue", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("model")
