"""Random viewer histories against a real queue file, a real worker and the Jellyfin fake.

Viewer actions (progress, watched, unwatched, rewatch), server outages and
flaky answers, process crashes (idle, or right after the server accepted a
change and before the queue recorded it) with restarts on the same queue
file, and edits made on the server by another device. After a final drain:
the server holds what the viewer last did, or the other device's edit when
that came later; each watched action is applied at most once; nothing is
left pending or syncing.

A crash is simulated in-process: the backend wrapper raises a BaseException
(so the worker's threads die where they stand, leaving claimed rows in
syncing), the dead worker's threads are joined, the queue is closed and
re-opened on the same file after the claim leases expire, and a new worker
starts. A real killed subprocess would cost ~0.5 s per crash (interpreter
and SQLAlchemy start-up), too much for a hypothesis budget.
"""
from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from typing import Dict, Optional, Tuple

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from playbacksync.backends.base import Backend
from playbacksync.queue import SyncQueue
from playbacksync.worker import SyncWorker
from tests.fakes.mediabrowser import TICKS_PER_SECOND
from tests.test_worker_support import PROGRESS, T0, UNWATCHED, WATCHED, FakeClock, Server, wait_for

ITEMS = 2
LEASE = 120.0


class Crash(BaseException):
    """The process died (not an Exception: nothing in the worker may catch it)."""


class Killable(Backend):
    def __init__(self, inner: Backend):
        self.inner = inner
        self.killed = False
        self.crash_after_apply = False

    def _alive(self):
        if self.killed:
            raise Crash()

    def apply(self, change):
        self._alive()
        self.inner.apply(change)
        if self.crash_after_apply:  # the server has it; the queue never hears back
            self.killed = True
            raise Crash()

    def check(self):
        self._alive()
        return self.inner.check()

    def read_state(self, item_id):
        self._alive()
        return self.inner.read_state(item_id)


class NoJitter:
    def random(self):
        return 0.0


# A simulated crash kills the worker's threads with Crash on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")


class ViewerAndServer(RuleBasedStateMachine):
    @initialize()
    def setup(self):
        self.dir = tempfile.mkdtemp(prefix="worker-stateful-")
        self.clock = FakeClock(T0 + 0.123)
        self.server = Server("jf", items=ITEMS, clock=self.clock)
        self.applied: Counter = Counter()
        fake = self.server.fake
        original = fake.mark_played

        def counting(uid, iid, when=None):
            self.applied[iid] += 1
            return original(uid, iid, when)
        fake.mark_played = counting
        self.down = False
        # Per item: the latest thing that happened to it, (source, kind, value) — the oracle.
        self.last: Dict[int, Optional[Tuple[str, str, object]]] = {i: None for i in range(ITEMS)}
        self.watched_actions: Counter = Counter()
        self.queue = None
        self.worker = None
        self._boot()

    def _boot(self):
        self.queue = SyncQueue(self.dir, clock=self.clock, lease_seconds=LEASE)
        self.killer = Killable(self.server.backend())
        self.worker = SyncWorker(self.queue, {"jf": self.killer}, clock=self.clock, poll_interval=0.2,
                                 rng=NoJitter(), conflict_age=600.0)
        self.worker.start()
        assert wait_for(lambda: self.worker.server_states()["jf"] != "unknown", 5)
        self._settle()

    def _restart(self):
        """The process died: its threads are gone, its claims stay in syncing until the leases expire."""
        old = self.worker
        self.killer.killed = True
        old._stopping.set()
        old.notify()
        for lane in old._lanes.values():
            lane.thread.join(5)
            assert not lane.thread.is_alive()
        self.queue.close()
        self.clock.advance(LEASE + 1)
        self._boot()

    def _settled(self) -> bool:
        if self.killer.killed:
            return True
        # One query, so a row can't slip from pending to syncing between two looks.
        rows = self.queue.rows("jf", ("pending", "syncing"))
        if any(r.status == "syncing" for r in rows):
            return False
        if self.worker.server_states()["jf"] in ("offline", "auth_required"):
            return True
        now = self.clock()
        if self.worker._lanes["jf"].not_before > now:  # the server's Retry-After
            return True
        # Claimable: the oldest pending row of its item, and due.
        first = {}
        for row in rows:
            first.setdefault(row.media_item_id, row)
        return all(r.next_attempt_at > now for r in first.values())

    def _settle(self):
        assert wait_for(self._settled, 10), f"worker did not settle: {self.queue.counts()}"
        if self.killer.killed:
            self._restart()

    def _tick(self):
        self.clock.advance(1.37)

    # -- the viewer ------------------------------------------------------------
    def _act(self, item: int, kind: str, position_s: float = 0.0):
        self._tick()
        self.queue.enqueue_change(self.server.change(item, kind, position_s=position_s, created_at=self.clock()))
        self.worker.notify()
        self.last[item] = ("viewer", kind, position_s)
        if kind == WATCHED:
            self.watched_actions[item] += 1
        self._settle()

    @rule(item=st.integers(0, ITEMS - 1), position=st.integers(1, 3000))
    def progress(self, item, position):
        self._act(item, PROGRESS, float(position))

    @rule(item=st.integers(0, ITEMS - 1))
    def watched(self, item):
        self._act(item, WATCHED)

    @rule(item=st.integers(0, ITEMS - 1))
    def unwatched(self, item):
        self._act(item, UNWATCHED)

    @rule(item=st.integers(0, ITEMS - 1), position=st.integers(1, 600))
    def rewatch(self, item, position):
        self._act(item, WATCHED)
        self._act(item, PROGRESS, float(position))

    # -- the server and the process ------------------------------------------------
    @rule()
    def outage(self):
        if not self.down:
            # Every connection is reset (RST) until recovery. Not go_down(): a closed
            # ephemeral port can be taken meanwhile, and come_back() would then fail.
            self.server.fake.reset_trouble()
            self.server.fake.reset_next(times=10 ** 9)
            self.down = True

    @rule()
    def recovery(self):
        if self.down:
            self.server.fake.reset_trouble()
            self.down = False
            for _ in range(4):  # a probe may meet an armed flaky answer: probe again later
                self.clock.advance(61)  # past any probe backoff
                self.worker.notify()
                if wait_for(lambda: self.killer.killed or self.worker.server_states()["jf"] != "offline", 1):
                    break
            assert self.killer.killed or self.worker.server_states()["jf"] != "offline"
            self._settle()

    @rule(status=st.sampled_from([500, 503, 429]))
    def flaky_answer(self, status):
        if not self.down:
            self.server.fake.reset_trouble()
            self.server.fake.fail_next(status, retry_after=2 if status == 429 else None)

    @rule()
    def crash_idle(self):
        self._restart()

    @rule()
    def crash_after_next_apply(self):
        self.killer.crash_after_apply = True

    @rule(item=st.integers(0, ITEMS - 1), position=st.integers(0, 3000), played=st.booleans())
    def other_device_edits(self, item, position, played):
        self._tick()
        s = self.server
        s.fake.set_user_data(s.user_id, s.items[item], position_ticks=position * TICKS_PER_SECOND, played=played,
                             play_count=1 if played else 0, last_played=self.clock())
        self.last[item] = ("device", "edit", (position, played))

    # -- the end ----------------------------------------------------------------------
    def teardown(self):
        try:
            if self.worker is None:
                return
            if self.down:
                self.server.fake.reset_trouble()
            self.killer.crash_after_apply = False
            if self.killer.killed:
                self._restart()
            for _ in range(12):  # backoff up to its cap, then everything is due
                self.clock.advance(61)
                self.worker.process_now()
                wait_for(lambda: not self.queue.get_pending("jf", due_only=False) and self._settled(), 2)
                counts = self.queue.counts().get("jf", {})
                if not counts.get("pending") and not counts.get("syncing"):
                    break
            counts = self.queue.counts().get("jf", {})
            assert not counts.get("pending") and not counts.get("syncing") and not counts.get("failed"), counts
            for i in range(ITEMS):
                self._check_item(i)
        finally:
            if self.worker is not None:
                self.worker.stop(1.0)
                self.queue.close()
            self.server.stop()
            shutil.rmtree(self.dir, ignore_errors=True)

    def _check_item(self, i: int):
        s = self.server
        iid = s.items[i]
        state = s.state(i)
        assert self.applied[iid] <= self.watched_actions[i], "a watched change was applied twice"
        last = self.last[i]
        if last is None:
            assert state.play_count == 0 and state.position_ticks == 0
            return
        source, kind, value = last
        if source == "device":
            position, played = value
            assert (state.position_ticks, state.played) == (position * TICKS_PER_SECOND, played), (last, state)
        elif kind == PROGRESS:
            assert state.position_ticks == int(value * 1000) * 10_000, (last, state)
        elif kind == WATCHED:
            assert state.played and state.position_ticks == 0, (last, state)
        else:
            assert not state.played and state.position_ticks == 0, (last, state)


ViewerAndServer.TestCase.settings = settings(max_examples=int(__import__("os").environ.get("WK_EX", "40")), stateful_step_count=14, deadline=None,
                                             suppress_health_check=[HealthCheck.too_slow])
TestViewerAndServer = ViewerAndServer.TestCase
