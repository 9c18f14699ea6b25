"""The gallery: boards (named collections per user) and their images; image ids never reused.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # Without AUTOINCREMENT SQLite gives a new row the largest id + 1, so deleting the newest image
        # would hand its id to the next one. SQLite cannot ALTER that: batch mode rebuilds the table.
        # (PostgreSQL's sequences never reuse a value.)
        with op.batch_alter_table("images", recreate="always", table_kwargs={"sqlite_autoincrement": True}):
            pass
    op.create_table(
        "boards",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("owner", "name", name="uq_boards_owner_name"),
    )
    op.create_table(
        "board_images",
        sa.Column("board_id", sa.Integer, sa.ForeignKey("boards.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("added", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_board_images_image_id", "board_images", ["image_id"])


def downgrade() -> None:
    op.drop_index("ix_board_images_image_id", "board_images")
    op.drop_table("board_images")
    op.drop_table("boards")
