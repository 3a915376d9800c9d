"""The queue table with the seed's fields.

Revision ID: 0001
Revises:
"""
from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TABLE = "playback_sync_queue"


def upgrade():
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("media_item_id", sa.Text, nullable=False),
        sa.Column("source_id", sa.Text, nullable=False),
        sa.Column("user_id", sa.Text, nullable=False, server_default=""),
        sa.Column("change_type", sa.Text, nullable=False),
        sa.Column("position_ms", sa.Integer),
        sa.Column("completed", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("last_attempt_at", sa.Float),
        sa.Column("attempt_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error_message", sa.Text),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.CheckConstraint(
            "change_type IN ('progress_update', 'mark_watched', 'mark_unwatched')",
            name="ck_queue_change_type"),
        sa.CheckConstraint(
            "status IN ('pending', 'syncing', 'synced', 'failed')", name="ck_queue_status"),
        # Ids are never reused: a stale id held by a worker can never hit a newer change.
        sqlite_autoincrement=True,
    )
    op.create_index("ix_queue_media_item_id", TABLE, ["media_item_id"])
    op.create_index("ix_queue_source_id", TABLE, ["source_id"])
    op.create_index("ix_queue_status", TABLE, ["status"])


def downgrade():
    op.drop_index("ix_queue_status", TABLE)
    op.drop_index("ix_queue_source_id", TABLE)
    op.drop_index("ix_queue_media_item_id", TABLE)
    op.drop_table(TABLE)
