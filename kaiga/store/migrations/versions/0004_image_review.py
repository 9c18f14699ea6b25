"""Images held for review: the safety filter's flagged images ("held") and the reviewer's approval.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL for every image stored before: none was flagged. A plain ADD COLUMN on SQLite too (no table
    # rebuild), so the images table keeps its AUTOINCREMENT (migration 0002).
    op.add_column("images", sa.Column("review", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("images", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("review")
