"""One server's lane: its connection state and the thread that drains its changes.

Everything about one server lives here so that one server's outage, slow
answers or revoked token never touch another's lane.
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import replace
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Set

from ..backends.base import AuthError, Backend, ItemState, PermanentError, TransientError
from ..queue import pause
from ..redact import redact
from ..changes import APPLIED, PROGRESS, SUPERSEDED, WATCHED, QueuedChange
from . import events as ev
from .backoff import backoff_delay, retry_delay
from .lane_writes import LaneWrites
from .plan import ItemKey, conflict, landed, plan_batch, waited
from .resolve import item_gone, resolve_rows
from .sending import LeaseHeartbeat, send_window

if TYPE_CHECKING:  # pragma: no cover
    from .worker import SyncWorker

log = logging.getLogger(__name__)

ONLINE, OFFLINE, UNKNOWN = "online", "offline", "unknown"
_WAITING = "waiting for an earlier change of this item"


class Lane(LaneWrites):
    def __init__(self, worker: "SyncWorker", source_id: str, backend: Backend):
        self.w = worker
        self.source_id = source_id
        self.backend = backend
        self.generation = 0          # bumped by set_backend: late answers of the old backend are ignored
        self.lock = threading.RLock()  # guards queue writes against stop()'s abandon
        self.probe_lock = threading.Lock()
        self.wake = threading.Event()
        self.state = UNKNOWN
        self.auth_required = False
        self.paused = False
        self.force = False
        self.online_since: Optional[float] = None
        self.probe_attempts = 0
        self.next_probe_at = 0.0
        self.not_before = 0.0        # the server's Retry-After, for the whole server
        self.own_writes: Dict[ItemKey, float] = {}  # item -> when this worker last wrote it
        self.inflight: Set[int] = set()             # claimed row ids not yet closed or released
        self.told_unidentified: Set[str] = set()    # media keys whose "not identified yet" was told
        self.passes = 0                             # loop passes finished (tests wait on it, never sleep)
        self.abandoned = False
        self.thread: Optional[threading.Thread] = None

    # -- status ------------------------------------------------------------
    def status(self) -> str:
        if self.auth_required:
            return "auth_required"
        if self.held():
            return "paused"
        return self.state

    def held(self) -> bool:
        """Paused here, or by the user's `pause` in any process (paused.json, re-read when it changes)."""
        return self.paused or pause.is_paused(getattr(self.w.queue, "folder", None), self.source_id)

    def halted(self) -> bool:
        """Stop sending (the rest of a batch goes back to pending)."""
        return (self.w._stopping.is_set() or self.held() or self.auth_required or self.state == OFFLINE
                or self.w.clock() < self.not_before)

    def replace_backend(self, backend: Backend) -> None:
        """Settings changed: a fresh start with ``backend`` (auth pause, backoff and Retry-After lifted)."""
        with self.probe_lock:
            self.generation += 1
            self.backend = backend
            self.auth_required = False
            self.state = UNKNOWN
            self.probe_attempts = 0
            self.next_probe_at = 0.0
            self.not_before = 0.0
        self.wake.set()

    # -- thread ------------------------------------------------------------
    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=f"playback-sync-worker:{self.source_id}",
                                       daemon=True)
        self.thread.start()

    def _run(self) -> None:
        stopping = self.w._stopping
        while not stopping.is_set():
            self.wake.wait(self._timeout())
            self.wake.clear()
            if stopping.is_set():
                break
            try:
                more = self.step()
            except Exception:
                log.exception("server %s: sync step failed", self.source_id)
                self._release_all()
                more = False
                stopping.wait(1.0)  # don't spin on a persistent bug
            self.passes += 1
            if more:
                self.wake.set()

    def _timeout(self) -> float:
        now = self.w.clock()
        waits = [self.w.poll_interval]
        if self.state != ONLINE and not self.auth_required:
            waits.append(self.next_probe_at - now)
        if self.not_before > now:
            waits.append(self.not_before - now)
        return min(self.w.poll_interval, max(0.005, min(waits)))

    # -- one pass ------------------------------------------------------------
    def step(self) -> bool:
        """Probe or send one batch. True when more is due right away."""
        self.w.recover_claims()
        now = self.w.clock()
        if self.held() or self.auth_required or now < self.not_before:
            return False
        force, self.force = self.force, False
        if self.state != ONLINE:
            if not force and now < self.next_probe_at:
                return False
            if not self.probe():
                return False
        rows = self._claim(force)
        if not rows:
            return False
        self._run_batch(rows)
        return len(rows) >= self.w.batch_size

    def _claim(self, force: bool) -> List[QueuedChange]:
        q = self.w.queue
        with self.lock:
            if self.abandoned:
                return []
            # "sync now" (force) skips our own backoff; the queue's per-item order holds either way.
            rows = q.claim(self.source_id, limit=self.w.batch_size, due_only=not force)
            self.inflight.update(r.id for r in rows)
        return rows

    def probe(self) -> bool:
        """check(): online or not. Called while offline/unknown, and after a transient error."""
        backend, gen = self.backend, self.generation
        try:
            info = backend.check()
        except AuthError as e:
            self._auth(e, gen)
            return False
        except Exception as e:  # TransientError and anything unexpected: not reachable
            if gen == self.generation:
                self._went_offline(e)
            return False
        if gen != self.generation:
            return False
        # another server at the address? (before anything identified on the old one goes out)
        self.w.heard_identity(self.source_id, str(getattr(info, "server_id", "") or ""))
        was = self.state
        self.state, self.probe_attempts = ONLINE, 0
        self.online_since = self.w.clock()
        if was != ONLINE:
            self.w._emit(ev.ONLINE, self.source_id, f"{self.source_id} is reachable")
        return True

    def _went_offline(self, exc: BaseException) -> None:
        self.probe_attempts += 1
        self.next_probe_at = self.w.clock() + backoff_delay(
            self.probe_attempts, base=self.w.backoff_base, cap=self.w.backoff_cap, rng=self.w.rng)
        if self.state != OFFLINE:
            self.state = OFFLINE
            self.w._emit(ev.OFFLINE, self.source_id,
                         f"{self.source_id} is not reachable; changes wait for it ({redact(exc)})")

    def _still_online(self, gen: int) -> bool:
        """After a transient error: is the server down (stop sending), or only this item failing?"""
        with self.probe_lock:
            if self.state == OFFLINE or gen != self.generation:
                return False
            return self.probe()

    def _auth(self, exc: BaseException, gen: int) -> None:
        if gen != self.generation or self.auth_required:
            return
        self.auth_required = True
        self.w._emit(ev.AUTH_REQUIRED, self.source_id,
                     f"{self.source_id} refused the credentials: sign in again in the settings ({redact(exc)})")

    # -- a batch ---------------------------------------------------------------
    def _run_batch(self, rows: Sequence[QueuedChange]) -> None:
        heartbeat = LeaseHeartbeat(self.w.queue, self._inflight_ids, self.w.queue.lease_seconds / 3,
                                   f"playback-sync-lease:{self.source_id}").start()
        try:
            self._send_batch(resolve_rows(self, rows))
        finally:
            heartbeat.stop()

    def _inflight_ids(self) -> List[int]:
        with self.lock:
            return sorted(self.inflight)

    def _send_batch(self, rows: Sequence[QueuedChange]) -> None:
        if not rows:
            return
        batch = plan_batch(rows)
        for row, why in batch.superseded:  # dedup: never sent, closed with the reason
            self._close(row, SUPERSEDED, why, event=False)
        jobs = deque((k, rs) for k, rs in batch.jobs.items() if rs)
        if not jobs:
            return
        n = sum(len(rs) for _, rs in jobs)
        self.w._emit(ev.PROGRESS, self.source_id, f"sending {n} change{'s' * (n != 1)} to {self.source_id}")
        backend, gen = self.backend, self.generation
        now, age = self.w.clock(), self.w.conflict_age
        states = self._read_states(backend, [k for k, rs in jobs
                                             if any(waited(r, now, self.online_since, age) for r in rs)])

        def drain():
            while True:
                try:
                    key, job_rows = jobs.popleft()
                except IndexError:
                    return
                try:
                    self._run_job(backend, gen, key, job_rows, states.get(key[0]))
                except Exception:
                    log.exception("server %s: item %s failed unexpectedly", self.source_id, key[0])
                    self._release(job_rows)

        # Items are independent: up to `connections` requests at once, each item in order.
        helpers = [threading.Thread(target=drain, daemon=True, name=f"playback-sync-worker:{self.source_id}+{i}")
                   for i in range(min(self.w.connections, len(jobs)) - 1)]
        for t in helpers:
            t.start()
        drain()
        for t in helpers:
            t.join()

    def _read_states(self, backend: Backend, keys: Sequence[ItemKey]) -> Dict[str, ItemState]:
        """The conflict-check reads of a whole batch in a few requests (after an offline spell every
        change needs one). On any failure: {} and each item is read on its own as before."""
        ids = [k[0] for k in keys]
        if len(ids) < 2 or self.halted():
            return {}
        try:
            return backend.item_states(ids)
        except Exception as e:  # the per-item reads report it properly
            log.info("server %s: batched state read failed, reading item by item: %s", self.source_id, redact(e))
            return {}

    def _run_job(self, backend: Backend, gen: int, key: ItemKey, rows: List[QueuedChange],
                 prefetched: Optional[ItemState] = None) -> None:
        now = self.w.clock()
        conflict_age = self.w.conflict_age
        state = None
        if prefetched is not None and any(waited(r, now, self.online_since, conflict_age) for r in rows):
            state = prefetched
        elif any(waited(r, now, self.online_since, conflict_age) for r in rows):
            if self.halted():
                self._release(rows)
                return
            state = self._read(backend, gen, key, rows)
            if state is None:
                return
        for i, row in enumerate(rows):
            if self.halted():
                self._release(rows[i:])
                return
            seen = None
            if row.change_type == WATCHED:
                # Fresh, just before the send: an earlier send in doubt is judged on it,
                # and its play count tells the next judge whether this send landed.
                state = self._read(backend, gen, key, rows[i:])
                if state is None:
                    return
                why = landed(row, state) if row.sent_at is not None else None
                if why is not None:
                    self.own_writes[key] = self.w.clock()
                    self._close(row, APPLIED, why, event=True)
                    continue
                seen = state.play_count
            cover = self.w.live_cover(row, state) if self.w.live_cover is not None else None
            if cover is not None and cover[0] == "skip":  # a live report already set it (live/reporter.py)
                self._close(row, SUPERSEDED, cover[1], event=False)  # routine while online: no message
                continue
            counts_play = cover is not None and cover[0] == "count"
            if counts_play:  # this write also counts the viewing's play: from the count before it
                state = self._read(backend, gen, key, rows[i:])
                if state is None:
                    return
                seen = state.play_count
                if row.sent_at is not None and row.seen_play_count is not None:
                    seen = row.seen_play_count
                    # An earlier send got no answer, and counted the play (Jellyfin 10.8's start may land
                    # without the position after it): the position goes again, the play not.
                    counts_play = state.play_count <= seen
            # A live report of this viewing changed the server's state itself: that is not another
            # device's edit, so only a change the live session did not touch is checked for conflicts.
            ours = cover is not None or (self.w.live_reported is not None and self.w.live_reported(row))
            if not ours and state is not None and waited(row, now, self.online_since, conflict_age):
                why = conflict(row, state, own_write_until=self.own_writes.get(key))
                if why is not None:
                    self._close(row, SUPERSEDED, why, event=True)
                    continue
            window = send_window(backend, self.w.send_window, requests=2 if row.change_type == PROGRESS else 1)
            with self.lock:  # durably "a write of this row goes out now", before it does
                if self.abandoned or not self.w.queue.begin_send(row.id, window, seen):
                    self.inflight.discard(row.id)  # no longer ours: whoever holds it decides
                    return
            try:
                undated = cover is not None and cover[0] == "undated"  # the play is counted: no 2nd count
                backend.apply(replace(row, created_at=0.0) if undated
                              else replace(row, play_count_to=seen + 1) if counts_play else row)
            except AuthError as e:
                self._auth(e, gen)
                self._release(rows[i:])
                return
            except PermanentError as e:
                for r in item_gone(self, [row], e):  # a 404: identified again, not failed
                    self._fail(r, e)
                continue
            except Exception as e:
                self._transient(gen, key, row, e, rows[i + 1:])
                return
            self.own_writes[key] = self.w.clock()
            self._close(row, APPLIED, None, event=True)

    def _read(self, backend: Backend, gen: int, key: ItemKey,
              rows: List[QueuedChange]) -> Optional[ItemState]:
        """The server's state of the item, or None when ``rows`` were dealt with (error)."""
        try:
            return backend.read_state(key[0])
        except AuthError as e:
            self._auth(e, gen)
            self._release(rows)
        except PermanentError as e:  # the item is gone: identified again (a 404), else nothing can be applied
            for r in item_gone(self, rows, e):
                self._fail(r, e, in_doubt=r.sent_at is not None)  # an earlier send's doubt stays
        except Exception as e:
            self._transient(gen, key, rows[0], e, rows[1:], sent=False)
        return None

    def _transient(self, gen: int, key: ItemKey, row: QueuedChange, exc: BaseException,
                   rest: Sequence[QueuedChange], *, sent: bool = True) -> None:
        """``sent``: ``row``'s write went out; unless the server answered that it did not do it,
        the write may still land, so the row stays in doubt (it waits out its send window)."""
        # A read that failed leaves an earlier doubt as it was; a send answered "not done"
        # settles it (an earlier send in doubt was judged not landed just before).
        # A write that never connected did not go out: its send is settled, not in doubt, so the
        # changes made while the server is away coalesce into it (one write when it is back).
        went_out = sent and not getattr(exc, "not_sent", False)
        in_doubt = (went_out and not getattr(exc, "answered", False)) or (not sent and row.sent_at is not None)
        if self.w._stopping.is_set():  # stop() cut it: back to pending, no probe; a send stays in doubt
            self._release([row, *rest])
            return
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(exc, TransientError) and retry_after is None and not self._still_online(gen):
            # The server is down: not this change's fault, no attempt counted.
            if sent and not in_doubt:
                self._retry(row, redact(exc), self.w.clock(), count=False)
                self._release(rest)
            else:
                self._release([row, *rest])
            return
        if not isinstance(exc, TransientError):
            log.error("server %s: unexpected %s from the backend", self.source_id, type(exc).__name__,
                      exc_info=exc)  # a bug, not the server: its traceback goes to the log
        attempts = row.attempt_count + 1
        message = redact(exc)
        log.info("server %s: change #%s failed (attempt %d): %s", self.source_id, row.id, attempts, message)
        if attempts >= self.w.max_attempts:
            self._fail(row, message, in_doubt=in_doubt)
            self._release(rest)
            return
        until = self.w.clock() + retry_delay(attempts, retry_after, base=self.w.backoff_base,
                                             cap=self.w.backoff_cap, rng=self.w.rng)
        if retry_after is not None:  # the server asked every client to wait
            self.not_before = max(self.not_before, until)
        self._write([row.id], self.w.queue.mark_retry, row.id, message, until, count_attempt=True,
                    in_doubt=in_doubt)
        for r in rest:
            self._retry(r, _WAITING, until, count=False)
