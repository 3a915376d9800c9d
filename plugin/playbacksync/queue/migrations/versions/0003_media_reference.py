"""Record first: rows keep the media reference and may wait for their item id; sends in doubt.

Revision ID: 0003
Revises: 0002

* ``media_item_id`` becomes nullable: a change is recorded against what the
  player knew (``media_path``, ``media_title``, ``media_provider_ids`` JSON,
  ``media_kind``) before the server's item is known; the worker fills it in.
* ``media_key``: the identity rows are coalesced by (see queue/rows.py);
  existing rows get ``item:<media_item_id>``, so their coalescing is unchanged.
* ``sent_at`` / ``unsure_until`` / ``seen_play_count``: when a write of the
  row last went out, until when that write may still land, and the server's
  play count just before it (the worker's exactly-once rule).
* ``legacy_imports``: journal files of older versions already imported.

Existing rows are kept as they are (SQLite rebuilds the table to drop the
NOT NULL; ids and AUTOINCREMENT are kept).
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLE = "playback_sync_queue"


def upgrade():
    with op.batch_alter_table(TABLE, table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.alter_column("media_item_id", existing_type=sa.Text, nullable=True)
        batch.add_column(sa.Column("media_key", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("media_path", sa.Text))  # BLOB when not valid UTF-8 (rows.py)
        batch.add_column(sa.Column("media_title", sa.Text))
        batch.add_column(sa.Column("media_provider_ids", sa.Text))
        batch.add_column(sa.Column("media_kind", sa.Text))
        batch.add_column(sa.Column("sent_at", sa.Float))
        batch.add_column(sa.Column("unsure_until", sa.Float, nullable=False, server_default="0"))
        batch.add_column(sa.Column("seen_play_count", sa.Integer))
    op.execute(f"UPDATE {TABLE} SET media_key = 'item:' || media_item_id WHERE media_key = ''")
    # Journals of older versions imported into the queue, so each is imported once (app.py).
    op.create_table("legacy_imports", sa.Column("token", sa.Text, primary_key=True),
                    sa.Column("imported_at", sa.Float, nullable=False))
    # Coalescing and the claim's per-media rule look up the rows of one (server, media, user).
    op.create_index("ix_queue_media_key", TABLE, ["source_id", "media_key", "user_id", "status"])


def downgrade():
    op.drop_index("ix_queue_media_key", TABLE)
    op.drop_table("legacy_imports")
    op.execute(f"DELETE FROM {TABLE} WHERE media_item_id IS NULL")
    with op.batch_alter_table(TABLE, table_kwargs={"sqlite_autoincrement": True}) as batch:
        for name in ("seen_play_count", "unsure_until", "sent_at", "media_kind", "media_provider_ids", "media_title",
                     "media_path", "media_key"):
            batch.drop_column(name)
        batch.alter_column("media_item_id", existing_type=sa.Text, nullable=False)
