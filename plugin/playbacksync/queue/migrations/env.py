"""Alembic environment: online only, on the connection the queue hands over."""
from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached by a stray `alembic` command line
    raise RuntimeError("queue migrations run from playbacksync.queue with an open connection")

# render_as_batch: SQLite cannot ALTER most things; batch mode copies the table instead.
context.configure(connection=connection, target_metadata=None, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
