"""Campaigns: a named plan whose cells are jobs of the queue (`jobs.campaign` names the campaign).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op


revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("plan", sa.JSON(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
    )
    # NULL for every job queued before: none belonged to a campaign. A plain ADD COLUMN on SQLite too.
    op.add_column("jobs", sa.Column("campaign", sa.String(64), nullable=True))
    op.create_index("ix_jobs_campaign", "jobs", ["campaign", "status"])


def downgrade() -> None:
    op.drop_index("ix_jobs_campaign", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("campaign")
    op.drop_table("campaigns")
