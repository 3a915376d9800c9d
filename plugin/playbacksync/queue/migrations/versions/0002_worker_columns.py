"""What the worker needs: backoff, duration, outcome, claim owner and lease.

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLE = "playback_sync_queue"


def upgrade():
    with op.batch_alter_table(TABLE) as batch:
        # 0 = due at once; rows from revision 0001 are all due.
        batch.add_column(sa.Column("next_attempt_at", sa.Float, nullable=False, server_default="0"))
        batch.add_column(sa.Column("duration_ms", sa.Integer))
        batch.add_column(sa.Column("updated_at", sa.Float))
        batch.add_column(sa.Column("resolution", sa.Text))
        batch.add_column(sa.Column("claim_owner", sa.Text))
        batch.add_column(sa.Column("lease_expires_at", sa.Float))
    op.execute(f"UPDATE {TABLE} SET updated_at = created_at WHERE updated_at IS NULL")
    op.execute(f"UPDATE {TABLE} SET resolution = 'applied' WHERE status = 'synced' AND resolution IS NULL")
    # Coalescing looks up the open rows of one (server, item, user).
    op.create_index("ix_queue_key", TABLE, ["source_id", "media_item_id", "user_id", "status"])
    # claim(): due pending rows of one server, oldest first.
    op.create_index("ix_queue_claim", TABLE, ["source_id", "status", "next_attempt_at", "id"])


def downgrade():
    op.drop_index("ix_queue_claim", TABLE)
    op.drop_index("ix_queue_key", TABLE)
    with op.batch_alter_table(TABLE, table_kwargs={"sqlite_autoincrement": True}) as batch:
        for name in ("lease_expires_at", "claim_owner", "resolution", "updated_at",
                     "duration_ms", "next_attempt_at"):
            batch.drop_column(name)
