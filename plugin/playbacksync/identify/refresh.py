"""One refresh of one server's index: who answers, then what changed, or everything.

Steps: ask the server who it is (``backend.identity()``) and tie the index to it
(another server behind the same address drops the old rows); then, when the
index is whole and recent, fetch only the items saved since the last refresh
and check the server's item count; a full walk runs when there is no usable
earlier refresh, when the count disagrees (items were deleted) or when the
last full walk is older than ``full_every``.

The "since" mark is the server's own newest save time when its listings carry
one (Plex ``updatedAt``), else this machine's clock at the start of the
refresh less ``SKEW_MARGIN`` (Jellyfin does not return ``DateLastSaved``): a
few items are fetched twice rather than a change missed to clock skew.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional

from ..backends.base import IndexedItem
from .index import ItemIndex

log = logging.getLogger(__name__)

SKEW_MARGIN = 3600.0
FULL_EVERY = 86400.0


class Stopped(Exception):
    pass


@dataclass(frozen=True)
class RefreshProgress:
    """How far a running refresh is (``expected``: the item count last time, or None)."""

    server_id: str
    mode: str  # "full" | "incremental"
    done: int
    expected: Optional[int]
    started_at: float

    def text(self) -> str:
        of = " of about %d" % self.expected if self.expected else ""
        return "%s: %s index refresh, %d items%s" % (self.server_id, self.mode, self.done, of)


ProgressCallback = Callable[[RefreshProgress], None]


def refresh_server(index: ItemIndex, server_id: str, backend, *, stopping: threading.Event,
                   progress: Optional[ProgressCallback] = None, full_every: float = FULL_EVERY,
                   clock: Callable[[], float] = time.time, force_full: bool = False) -> str:
    """Refresh one server's rows; returns "full" or "incremental". Raises on failure (old rows kept)."""
    identity_of = getattr(backend, "identity", None)
    replaced = False
    if identity_of is not None:
        identity = identity_of()
        if identity:
            replaced = index.bind_identity(server_id, identity)
    info = index.info(server_id)
    started = clock()
    can_filter = identity_of is not None  # the real backends filter by save time; test doubles may not
    full = (force_full or replaced or not can_filter or info.refreshed_at is None or info.since is None
            or info.full_at is None or started - info.full_at > full_every)
    if not full:
        try:
            walk = _Walk(backend.iter_items(since=info.since), server_id, "incremental", None, stopping, progress)
            count = index.upsert(server_id, walk)
            index.set_since(server_id, walk.since(started, info.since))  # known once the walk is done
            total = backend.count_items()
        except Stopped:
            raise
        except Exception as e:  # a server that refuses the filter: the whole library still works
            log.info("incremental refresh of %s failed (%s): walking the whole library", server_id, e)
            total, count = None, -1
        if count < 0 or (total is not None and total != count):
            if count >= 0:
                log.info("%s lists %d items, the index holds %d: walking the whole library", server_id, total, count)
            full = True
        else:
            log.info("item index of %s: %d changed items, %d in all", server_id, walk.done, count)
            return "incremental"
    walk = _Walk(backend.iter_items(), server_id, "full", info.item_count or None, stopping, progress)
    count = index.replace(server_id, walk)
    index.set_since(server_id, walk.since(started))
    log.info("item index of %s: full walk, %d items in %.1f s", server_id, count, clock() - started)
    return "full"


class _Walk:
    """The items of a listing, counted for progress, stoppable between items."""

    def __init__(self, items: Iterable[IndexedItem], server_id: str, mode: str, expected: Optional[int],
                 stopping: threading.Event, progress: Optional[ProgressCallback]):
        self._items = items
        self._stopping = stopping
        self._progress = progress
        self._state = RefreshProgress(server_id, mode, 0, expected, time.time())
        self.done = 0
        self.newest: Optional[float] = None

    def __iter__(self) -> Iterator[IndexedItem]:
        self._report()
        for item in self._items:
            if self._stopping.is_set():
                raise Stopped("stopped")
            self.done += 1
            if item.updated_at is not None and (self.newest is None or item.updated_at > self.newest):
                self.newest = item.updated_at
            if self.done % 1000 == 0:
                self._report()
            yield item
        self._report()

    def _report(self) -> None:
        if self._progress is not None:
            self._progress(RefreshProgress(self._state.server_id, self._state.mode, self.done,
                                           self._state.expected, self._state.started_at))

    def since(self, started: float, previous: Optional[float] = None) -> float:
        """Where the next incremental refresh starts (nothing changed: where this one did)."""
        if self.newest is not None:
            return self.newest
        if previous is not None and self.done == 0:
            return previous
        return started - SKEW_MARGIN
