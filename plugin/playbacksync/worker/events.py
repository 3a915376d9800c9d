"""What the worker tells the host (OSD messages, notifications, status views)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..changes import QueuedChange

PROGRESS = "progress"          # a batch of changes is being sent to a server
COMPLETED = "completed"        # one change was applied on its server
FAILED = "failed"              # one change was given up on (kept in the queue, retryable)
ONLINE = "online"              # a server answers again (or for the first time)
OFFLINE = "offline"            # a server stopped answering; changes wait for it
AUTH_REQUIRED = "auth_required"  # a server refused the credentials; paused until settings change
SUPERSEDED = "superseded"      # a change was not sent: the server holds a newer state
NOT_IDENTIFIED = "not_identified"  # a change's item is not found on a server yet (kept, tried again)
KINDS = (PROGRESS, COMPLETED, FAILED, ONLINE, OFFLINE, AUTH_REQUIRED, SUPERSEDED, NOT_IDENTIFIED)


@dataclass(frozen=True)
class WorkerEvent:
    kind: str
    source_id: Optional[str]
    message: str
    change: Optional[QueuedChange] = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown worker event kind {self.kind!r}")
