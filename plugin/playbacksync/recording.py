"""Recording what the viewer did: tracked changes into the queue, in order, first of all.

One change per enabled server, against the media reference (no server item
yet: identification is a step of syncing). A change the queue refuses (locked
past its busy timeout, disk full, read-only) stays in memory, in order, and is
written when the fault clears; only a process that quits while the fault lasts
loses it, and then it is counted and the viewer told (``unrecorded``).

Runs on the service thread (app.py); ``give_up`` may come from another thread
(stop() giving up on a stuck service thread), hence the lock.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, List, Tuple

from .changes import WATCHED, Change
from .config import ServerConfig
from .messages import ServiceMessage

log = logging.getLogger(__name__)


def user_of(server: ServerConfig) -> str:
    return server.user_id or server.username or ""


class Recorder:
    RETRY_SAVE_SECONDS = 0.5

    def __init__(self, servers: Callable[[], List[ServerConfig]], emit: Callable[[ServiceMessage], None]):
        self._servers = servers  # the enabled servers of the current settings
        self._emit = emit
        self.queue = None  # set once the service opened it
        self.on_saved: Callable[[], None] = lambda: None  # wake the worker
        self._unsaved: List = []  # changes made but not yet in the queue (storage fault)
        self._unrecorded: Tuple[int, str] = (0, "")  # changes lost at quit, and why
        self._lock = threading.Lock()  # queue writes vs. give_up from another thread
        self._abandoned = False
        self._told_storage = False
        self._told_no_server = False
        self.last_storage_error = None

    @property
    def holding(self) -> bool:
        """Changes wait in memory for the queue to take them."""
        return bool(self._unsaved)

    def changes_for(self, tracked) -> List:
        """One change per enabled server, recorded against the media reference (no item yet)."""
        return [Change(media_item_id=None, source_id=server.id, user_id=user_of(server),
                       change_type=tracked.change_type, position_ms=tracked.position_ms,
                       duration_ms=tracked.duration_ms, completed=tracked.change_type == WATCHED,
                       created_at=tracked.created_at, media=tracked.media)
                for server in self._servers()]

    def record(self, tracked) -> None:
        made = self.changes_for(tracked)
        if not made and not self._told_no_server:
            self._told_no_server = True
            self._emit(ServiceMessage("not_identified", None, "no server is configured: nothing is synced"))
        with self._lock:
            if self._abandoned:  # stop() gave up on this change already
                return
            self._unsaved.extend(made)
        self.save()

    def save(self, final: bool = False) -> None:
        """Write held changes in order; on a storage fault keep them and try again later
        (``final``: a few tries, then what is left is lost and counted)."""
        from .queue import QueueError

        tries = 3 if final else 1
        while self._unsaved and tries:
            try:
                with self._lock:
                    if self._abandoned:
                        return
                    self.queue.enqueue_change(self._unsaved[0])
                    self._unsaved.pop(0)
            except QueueError as exc:
                tries -= 1
                self.last_storage_error = exc
                if not self._told_storage:
                    self._told_storage = True
                    log.error("could not save a playback change (kept, will retry): %s", exc)
                    self._emit(ServiceMessage("failed", None, f"a change could not be saved yet: {exc}"))
                if tries and final:
                    time.sleep(self.RETRY_SAVE_SECONDS)
                continue
            self._told_storage = False
            self.on_saved()
        if final and self._unsaved:  # the queue is still unusable: they are lost, and the viewer is told
            with self._lock:
                self._abandoned, left, self._unsaved = True, len(self._unsaved), []
            self.lost(left, str(self.last_storage_error))

    def give_up(self, not_handed_over: int, why: str) -> None:
        """Quit now: what is held, plus ``not_handed_over`` changes never taken, is lost."""
        with self._lock:
            self._abandoned = True  # nothing is written from now on
            left = len(self._unsaved) + not_handed_over
            self._unsaved = []
        if left:
            self.lost(left, why)

    def lost(self, n: int, why: str) -> None:
        self._unrecorded = (self._unrecorded[0] + n, why)
        log.error("%d playback change(s) could not be recorded: %s", n, why)

    def unrecorded(self) -> Tuple[int, str]:
        """(how many changes could not be recorded, why)."""
        return self._unrecorded
