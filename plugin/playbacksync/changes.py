"""What the queue holds: one change a viewer made to one item on one server.

Host-neutral and backend-neutral; the tracker makes them, the queue stores
them, the worker hands them to a backend.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # pragma: no cover (tracker imports this module: no import cycle at run time)
    from .tracker.events import MediaRef

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
    server's last-played time in the conflict check). ``media`` is what the
    player knew (path or URL, title, provider ids, kind): the app records a
    change against it at once, with ``media_item_id`` None, and the worker
    resolves it to the server's item when it syncs (record first, resolve later).
    """

    media_item_id: Optional[str]
    source_id: str
    user_id: str
    change_type: str
    position_ms: Optional[int] = None
    duration_ms: Optional[int] = None
    completed: bool = False
    created_at: float = 0.0
    media: Optional["MediaRef"] = None
    # Set by the worker, never queued: this position write also counts the viewing's play, whose
    # live start never reached the server; the server's play count becomes this number (an
    # absolute value, so a retry after a lost answer cannot count it twice). See live/reporter.py.
    play_count_to: Optional[int] = None

    def __post_init__(self):
        if self.change_type not in CHANGE_TYPES:
            raise ValueError(f"unknown change type {self.change_type!r}")


@dataclass(frozen=True)
class QueuedChange(Change):
    """A change as a queue row, with the worker's bookkeeping.

    ``media`` is always set on a row read from the queue (an empty reference
    for rows recorded before references were kept). ``unsure_until``: a send
    of this row may have reached the server and may still be applied until
    then (0: no send is in doubt); see the worker's docstring.
    """

    id: int = 0
    status: str = PENDING
    attempt_count: int = 0
    last_attempt_at: Optional[float] = None
    next_attempt_at: Optional[float] = None
    updated_at: Optional[float] = None
    error_message: Optional[str] = None
    resolution: Optional[str] = None
    media_key: str = ""
    sent_at: Optional[float] = None
    unsure_until: float = 0.0
    seen_play_count: Optional[int] = None

    @property
    def resolved(self) -> bool:
        """Is the server's item known?"""
        return bool(self.media_item_id)
