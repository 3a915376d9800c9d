"""A lane's writes of outcomes to the queue, and giving its rows back at stop().

A mixin of :class:`~.lane.Lane` (it uses the lane's ``w`` (the worker),
``lock``, ``inflight``, ``abandoned``, ``backend`` and ``source_id``). No queue
write happens after ``stop()`` abandoned the lane: later answers are ignored,
the rows went back to pending.
"""
from __future__ import annotations

import logging
from typing import Optional, Sequence

from ..changes import SUPERSEDED, QueuedChange
from ..redact import redact
from . import events as ev
from .resolve import describe as _what

log = logging.getLogger(__name__)


class LaneWrites:
    # -- queue writes (none after stop() abandoned the lane) ----------------------
    def _write(self, ids, fn, *args, **kw) -> bool:
        with self.lock:
            if self.abandoned:
                return False
            fn(*args, **kw)
            self.inflight.difference_update(ids)
            return True

    def _close(self, row: QueuedChange, resolution: str, note: Optional[str], *, event: bool) -> None:
        if not self._write([row.id], self.w.queue.mark_synced, row.id, resolution=resolution, note=note):
            return
        if not event:
            log.debug("server %s: change #%s closed: %s", self.source_id, row.id, note)
        elif resolution == SUPERSEDED:
            self.w._emit(ev.SUPERSEDED, self.source_id, f"{_what(row)} not sent to {self.source_id}: {note}", row)
        else:
            self.w._emit(ev.COMPLETED, self.source_id, f"{_what(row)} saved on {self.source_id}", row)

    def _fail(self, row: QueuedChange, exc, *, in_doubt: bool = False) -> None:
        """``in_doubt``: a write of ``row`` may still land (no answer); else the server answered."""
        message = redact(exc)
        if self._write([row.id], self.w.queue.mark_failed, row.id, message, in_doubt=in_doubt):
            self.w._emit(ev.FAILED, self.source_id, f"{_what(row)} could not be saved on {self.source_id}: "
                         f"{message}", row)

    def _retry(self, row: QueuedChange, message: str, until: float, *, count: bool) -> None:
        self._write([row.id], self.w.queue.mark_retry, row.id, message, until, count_attempt=count)

    def _release(self, rows: Sequence[QueuedChange]) -> None:
        ids = [r.id for r in rows]
        if ids:
            self._write(ids, self.w.queue.release, ids)

    def _release_all(self) -> None:
        with self.lock:
            ids = sorted(self.inflight)
        if ids:
            self._write(ids, self.w.queue.release, ids)

    def abort_requests(self) -> None:
        """stop()'s deadline is near: cut this lane's requests in flight (they fail at once)."""
        try:
            self.backend.abort_requests()
        except Exception:
            log.exception("server %s: could not cut the requests in flight", self.source_id)

    def abandon(self, timeout: float) -> bool:
        """stop(): give back every row still claimed; later answers are ignored."""
        got = self.lock.acquire(timeout=max(0.0, timeout))
        try:
            ids = sorted(self.inflight)
            self.abandoned = True
            if not got:
                return False  # a queue write is stuck; the queue's lease recovers these rows
            if ids:
                self.w.queue.release(ids)
            self.inflight.clear()
            return True
        finally:
            if got:
                self.lock.release()

