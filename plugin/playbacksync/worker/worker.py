"""SyncWorker: drains the queue to the servers, per server, in the background.

Threads: one daemon thread per configured server (a "lane"), started by
``start()`` and never at import. The design names one worker thread; it is
split per server because a request to a slow or dead server blocks its
thread for up to the connect/read timeout, and one server's outage must not
delay another's changes. While a lane sends a batch it may add up to
``connections - 1`` short-lived helper threads so independent items go out
in parallel (each item's changes stay in order on one thread). Every thread
is a daemon, so a request stuck in a slow server never holds the process;
``stop()`` gives such rows back to the queue (pending) at its deadline.

Per change: dedup within the batch, a conflict check for changes that waited,
apply, then close the row (applied / superseded), retry it with backoff, or
mark it failed. Per server: online/offline from ``check()`` and from errors,
probing with backoff while offline; Retry-After; auth errors pause the server
until ``set_backend``.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from typing import Callable, Dict, List, Mapping, Optional, Tuple

from ..backends.base import Backend
from ..changes import QueuedChange
from .events import WorkerEvent
from .lane import Lane

log = logging.getLogger(__name__)


class SyncWorker:
    def __init__(self, queue, backends: Mapping[str, Backend], *, clock: Callable[[], float] = time.time,
                 poll_interval: float = 5.0, max_attempts: int = 5, backoff_base: float = 1.0,
                 backoff_cap: float = 60.0, rng: Optional[random.Random] = None, conflict_age: float = 60.0,
                 connections: int = 2, batch_size: int = 100):
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        self.queue = queue
        self.clock = clock
        self.poll_interval = float(poll_interval)
        self.max_attempts = int(max_attempts)
        self.backoff_base = float(backoff_base)
        self.backoff_cap = float(backoff_cap)
        self.rng = rng or random.Random()
        self.conflict_age = float(conflict_age)
        self.connections = max(1, int(connections))
        self.batch_size = max(1, int(batch_size))
        self._stopping = threading.Event()
        self._started = False
        self._lock = threading.Lock()
        self._subscribers: List[Callable[[WorkerEvent], None]] = []
        self._lanes: Dict[str, Lane] = {sid: Lane(self, sid, b) for sid, b in backends.items()}
        # What live "now playing" reports already set, asked before each write (live/reporter.py cover)
        self.live_cover: Optional[Callable[[QueuedChange], Optional[Tuple[str, str]]]] = None

    # -- life cycle ------------------------------------------------------------
    def start(self) -> None:
        """Start one lane thread per server. Calling it twice does nothing."""
        with self._lock:
            if self._stopping.is_set():
                raise RuntimeError("a stopped SyncWorker cannot be started again; make a new one")
            if self._started:
                return
            self._started = True
            lanes = list(self._lanes.values())
        try:
            self.queue.prune()
        except Exception:
            log.exception("could not prune old synced rows")
        for lane in lanes:
            lane.start()

    def stop(self, timeout: float = 3.0) -> bool:
        """Stop within ``timeout`` seconds. Requests still running then are abandoned and
        their rows returned to pending. True when every thread finished in time."""
        deadline = time.monotonic() + max(0.0, timeout)
        self._stopping.set()
        lanes = list(self._lanes.values())
        for lane in lanes:
            lane.wake.set()
        clean = True
        for lane in lanes:
            if lane.thread is not None:
                lane.thread.join(max(0.0, deadline - time.monotonic()))
                clean = clean and not lane.thread.is_alive()
        for lane in lanes:
            try:
                clean = lane.abandon(max(0.05, deadline - time.monotonic())) and clean
            except Exception:
                log.exception("server %s: could not return in-flight rows to the queue", lane.source_id)
                clean = False
        return clean

    def notify(self) -> None:
        """A change was enqueued: look at the queue now instead of at the next poll."""
        for lane in list(self._lanes.values()):
            lane.wake.set()

    # -- commands -----------------------------------------------------------------
    def process_now(self) -> None:
        """Send everything now: skip retry backoff and probe offline servers at once.
        A server's own Retry-After is still honoured."""
        for lane in list(self._lanes.values()):
            lane.force = True
            lane.next_probe_at = 0.0
            lane.wake.set()

    def retry_failed(self, source_id: Optional[str] = None) -> int:
        """Failed changes go back to pending with their attempts reset."""
        n = self.queue.retry_failed(source_id)
        self.notify()
        return n

    def pause(self, source_id: Optional[str] = None) -> None:
        """Stop sending to one server (or all); requests in flight finish, the rest waits."""
        for lane in self._select(source_id):
            lane.paused = True

    def resume(self, source_id: Optional[str] = None) -> None:
        for lane in self._select(source_id):
            lane.paused = False
            lane.wake.set()

    def set_backend(self, source_id: str, backend: Backend) -> None:
        """The server's settings changed: use ``backend`` from now on and lift an auth pause."""
        with self._lock:
            lane = self._lanes.get(source_id)
            if lane is None:
                lane = self._lanes[source_id] = Lane(self, source_id, backend)
                if self._started and not self._stopping.is_set():
                    lane.start()
                return
        lane.replace_backend(backend)

    # -- status and events -----------------------------------------------------------
    def server_states(self) -> Dict[str, str]:
        """online | offline | paused | auth_required | unknown, per server."""
        return {sid: lane.status() for sid, lane in list(self._lanes.items())}

    def subscribe(self, callback: Callable[[WorkerEvent], None]) -> Callable[[], None]:
        """callback(WorkerEvent), called on a worker thread (keep it quick). Returns an unsubscribe."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)
        return unsubscribe

    def _emit(self, kind: str, source_id: Optional[str], message: str, change=None) -> None:
        event = WorkerEvent(kind, source_id, message, change)
        log.debug("%s %s: %s", kind, source_id, message)
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(event)
            except Exception:  # a subscriber's bug must never stop syncing
                log.exception("a sync event subscriber failed on %s", kind)

    def _select(self, source_id: Optional[str]) -> List[Lane]:
        if source_id is None:
            return list(self._lanes.values())
        lane = self._lanes.get(source_id)
        return [lane] if lane is not None else []
