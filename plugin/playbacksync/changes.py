"""What the queue holds: one change a viewer made to one item on one server.

Host-neutral and backend-neutral; the tracker makes them, the queue stores
them, the worker hands them to a backend.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

PROGRESS = "progress_update"
WATCHED = "mark_watched"
UNWATCHED = "mark_unwatched"
CHANGE_TYPES = (PROGRESS, WATCHED, UNWATCHED)

PENDING = "pending"
SYNCING = "syncing"
SYNCED = "synced"
FAILED = "failed"
STATUSES = (PENDING, SYNCING, SYNCED, FAILED)

# How a closed (synced) row was closed.
APPLIED = "applied"
SUPERSEDED = "superseded"


@dataclass(frozen=True)
class Change:
    """A change to apply: which item on which server, and what happened.

    ``created_at`` is wall-clock epoch seconds (it is compared with the
    server's last-played time in the conflict check).
    """

    media_item_id: str
    source_id: str
    user_id: str
    change_type: str
    position_ms: Optional[int] = None
    duration_ms: Optional[int] = None
    completed: bool = False
    created_at: float = 0.0

    def __post_init__(self):
        if self.change_type not in CHANGE_TYPES:
            raise ValueError(f"unknown change type {self.change_type!r}")


@dataclass(frozen=True)
class QueuedChange(Change):
    """A change as a queue row, with the worker's bookkeeping."""

    id: int = 0
    status: str = PENDING
    attempt_count: int = 0
    last_attempt_at: Optional[float] = None
    next_attempt_at: Optional[float] = None
    updated_at: Optional[float] = None
    error_message: Optional[str] = None
    resolution: Optional[str] = None
