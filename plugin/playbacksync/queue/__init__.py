"""The durable sync queue (SQLite via dataset, alembic migrations). See :mod:`.store`."""
from .store import QueueError, SyncQueue

__all__ = ["SyncQueue", "QueueError"]
