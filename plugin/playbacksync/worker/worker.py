"""SyncWorker: drains the queue to the servers, per server, in the background.

Threads: one daemon thread per configured server (a "lane"), started by
``start()`` and never at import. The design names one worker thread; it is
split per server because a request to a slow or dead server blocks its
thread for up to the connect/read timeout, and one server's outage must not
delay another's changes. While a lane sends a batch it may add up to
``connections - 1`` short-lived helper threads so independent items go out
in parallel (each item's changes stay in order on one thread), and a lease
heartbeat (sending.py). Every thread is a daemon, so a request stuck in a
slow server never holds the process; ``stop()`` cuts requests still running
near its deadline, so every thread ends within it, and gives their rows back
to the queue (pending, in doubt).

Per change: resolve its media reference to the server's item (resolve.py;
a miss waits, "waiting to identify"), dedup within the batch (the queue's
own coalescing rule), a conflict check for changes that waited, apply, then
close the row (applied / superseded), retry it with backoff, or mark it
failed. Each pass also takes back (at most every ``recover_interval``) claims
of a process that died while running (``recover_claims``). Per server: online/offline from ``check()`` and from errors, probing
with backoff while offline; Retry-After; auth errors pause the server until
``set_backend``. The worker uses the queue only through the small contract
in contract.py.

Exactly once for watched marks
------------------------------
A watched mark raises the server's play count, so sending it twice is
visible. The hard case is a write whose outcome we do not know: the request
timed out (the server may apply it later), the answer was lost, the player
quit or was killed mid-request, or another process took the row over. The
rules, each closing one way of sending twice:

1. *Record the send before it goes out.* ``begin_send`` writes, in the row
   and durably, the send time, ``unsure_until`` = now + the send window
   (``connect + read timeout + 5 s``, twice the timeouts for a position,
   which may take two requests; sending.py: past it the server cannot still
   be working on a request whose client gave up), and the play
   count read from the server just before. It also checks the claim is still
   ours (a claim lost to another process sends nothing) and renews the lease.
2. *An unknown outcome keeps the row in doubt.* A timeout, a lost connection,
   a gateway's 502/504 or an unreadable 2xx leave ``sent_at`` set
   (``mark_retry(in_doubt=True)``); so do ``stop()``'s release, a kill
   (the row is recovered from ``syncing`` with its columns as they were) and
   a lease taken over. Only an answer in which the server says it did not do
   it (429, 500, 501, 503, 4xx) settles the doubt.
3. *Nobody looks before the window has closed.* ``claim`` never hands out a
   row before its ``unsure_until``, not even on "sync now" and not in another
   process or after a restart (the time is in the row, not in memory).
   Coalescing treats a row in doubt as in flight: nothing absorbs, closes or
   overtakes it, so the key's later changes wait behind it, in order.
4. *Then ask the server.* A watched mark in doubt is re-read once the window
   has closed: if the play count went up since just before the send, or the
   server's last-played time is at/after the change's own time, the earlier
   send landed, and the row is closed as applied without sending
   (plan.py ``landed``). Otherwise it is sent, as rule 1 again. Unwatched
   marks and positions are absolute writes: sending one again changes
   nothing, so they are simply resent after the window.
5. *Leases outlive sends.* While a batch is out, the lane's heartbeat renews
   the claim every lease/3 (``extend_lease``), so a slow server never lets the
   lease run out under a live sender; two processes race only through the
   queue's atomic claim, which gives a row to one of them.

What is left: a process frozen (SIGSTOP, a suspended laptop) for longer than
the lease and the send window *between* ``begin_send`` and the bytes leaving
— another process may then judge and send, and the frozen one sends on
waking. Nothing short of the server's help (Jellyfin 10.9+'s absolute
UserData write, which a later issue may use) closes that.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from typing import Callable, Dict, List, Mapping, Optional, Tuple

from ..backends.base import Backend, ItemState
from ..changes import QueuedChange
from .contract import Resolver, WorkerQueue
from .events import WorkerEvent
from .lane import Lane

log = logging.getLogger(__name__)

# stop(): seconds kept before its deadline to cut requests still running and let their threads end.
STOP_UNWIND = 0.5


class SyncWorker:
    def __init__(self, queue: WorkerQueue, backends: Mapping[str, Backend], *, clock: Callable[[], float] = time.time,
                 poll_interval: float = 5.0, max_attempts: int = 5, backoff_base: float = 1.0,
                 backoff_cap: float = 60.0, rng: Optional[random.Random] = None, conflict_age: float = 60.0,
                 connections: int = 2, batch_size: int = 100, identifier: Optional[Resolver] = None,
                 unidentified_after: float = 3 * 86400.0, send_window: Optional[float] = None,
                 recover_interval: float = 10.0):
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
        self.identifier = identifier  # resolves media references (None: rows without an item wait)
        self.unidentified_after = float(unidentified_after)
        self.send_window = send_window  # None: from each backend's timeouts (sending.py)
        # Claims of a dead process (owner lock free) or an expired lease are taken back this often
        # while running (at most; a lane pass does it, lanes wake at least every poll_interval).
        self.recover_interval = max(0.0, float(recover_interval))
        self._next_recovery = 0.0  # monotonic
        self._recovery_lock = threading.Lock()
        self.refreshes: Dict[str, int] = {}  # index refreshes finished, per server (see resolve.py)
        self._stopping = threading.Event()
        self._started = False
        self._lock = threading.Lock()
        self._subscribers: List[Callable[[WorkerEvent], None]] = []
        self._lanes: Dict[str, Lane] = {sid: Lane(self, sid, b) for sid, b in backends.items()}
        # What live "now playing" reports already set, asked before each write (live/reporter.py cover)
        # (row, the server's state of its item when just read, else None) -> what to do with the row
        self.live_cover: Optional[Callable[[QueuedChange, Optional[ItemState]], Optional[Tuple[str, str]]]] = None
        self.live_reported: Optional[Callable[[QueuedChange], bool]] = None  # a live session touched the item

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
        """Stop within ``timeout`` seconds, ending every thread ``start()`` started.

        A request still running shortly before the deadline (``STOP_UNWIND``) is
        cut (its connection shut down, http.py); its row goes back to pending,
        in doubt when the write may have landed. True when every thread ended
        in time (False only if one is stuck outside a request, e.g. on a locked
        queue: the queue's lease recovers its rows)."""
        deadline = time.monotonic() + max(0.0, timeout)
        self._stopping.set()
        lanes = list(self._lanes.values())
        for lane in lanes:
            lane.wake.set()
        # Requests in flight may finish (and close their rows) until shortly before the deadline;
        # then they are cut (their rows stay in doubt) so every thread ends within it.
        unwind = min(STOP_UNWIND, max(0.0, timeout) / 2)
        for lane in lanes:
            if lane.thread is not None:
                lane.thread.join(max(0.0, deadline - unwind - time.monotonic()))
        while True:
            alive = [lane for lane in lanes if lane.thread is not None and lane.thread.is_alive()]
            left = deadline - time.monotonic()
            if not alive or left <= 0:
                break
            for lane in alive:  # again each round: a request may have started after the last cut
                lane.abort_requests()
            alive[0].thread.join(min(0.05, left))
        clean = not alive
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

    def server_replaced(self, source_id: str) -> None:
        """Another server answers at that server's address (identification noticed it): the item ids
        identified from the old one are not sent to the new one (queue.forget_identified)."""
        lane = self._lanes.get(source_id)
        if lane is None:
            return
        why = (f"not sent: another server answers at {source_id}'s address now, and this change names an item "
               f"of the server that answered before (played from its URL, or nothing else to identify it by)")
        try:
            again, failed = self.queue.forget_identified(source_id, self.clock(), why)
        except Exception:
            log.exception("server %s: could not take back the items identified on the server it replaced", source_id)
            return
        if again or failed:
            log.warning("server %s was replaced: %d change(s) to identify again, %d failed", source_id, again, failed)
        lane.wake.set()

    def heard_identity(self, source_id: str, identity: str) -> None:
        """A server's check named the identity it gives itself; identification compares it with the
        one its index belongs to (another one drops the index and calls ``server_replaced``)."""
        answers = getattr(self.identifier, "server_answers_as", None)
        if answers is None or not identity:
            return
        try:
            answers(source_id, identity)
        except Exception:  # identification must never stop a lane
            log.exception("server %s: comparing the server's identity failed", source_id)

    def recover_claims(self) -> int:
        """Take back claims whose owner died (its owner lock is free, whatever PID namespace it ran
        in) or whose lease ran out, at most every ``recover_interval`` s; lanes call it each pass.

        The queue does this at open; a long-running host (Kodi's service, the mpv agent) would
        otherwise leave a killed player's or ``sync``'s rows stranded in ``syncing`` until its next
        start. Rows sent before the owner died keep their doubt (they wait out their send window)."""
        now = time.monotonic()
        with self._recovery_lock:
            if now < self._next_recovery:
                return 0
            self._next_recovery = now + self.recover_interval
        try:
            n = self.queue.recover_stale()
        except Exception as exc:  # a locked queue: the next pass tries again
            log.warning("could not recover the changes of a stopped process: %s", exc)
            return 0
        if n:
            self.notify()
        return n

    def index_refreshed(self, source_id: str) -> None:
        """A server's item index was refreshed: changes waiting to identify are tried now."""
        self.refreshes[source_id] = self.refreshes.get(source_id, 0) + 1
        self.wake_unresolved(source_id)

    def wake_unresolved(self, source_id: str) -> None:
        """Changes of that server waiting to identify are due now, and its lane wakes."""
        lane = self._lanes.get(source_id)
        if lane is None:
            return
        try:
            self.queue.make_unresolved_due(source_id)
        except Exception:
            log.exception("server %s: could not wake the changes waiting to identify", source_id)
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

    def passes(self, source_id: str) -> int:
        """How many passes one server's lane has finished (a test waits for one to end
        instead of sleeping; a pass that sent nothing shows that nothing was due)."""
        lane = self._lanes.get(source_id)
        return lane.passes if lane is not None else 0

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
