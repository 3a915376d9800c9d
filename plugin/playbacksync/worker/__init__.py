"""The sync worker: drains the queue to the servers (see worker.py)."""
from .events import WorkerEvent
from .worker import SyncWorker

__all__ = ["SyncWorker", "WorkerEvent"]
