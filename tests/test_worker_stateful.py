"""Random viewer histories against a real queue file, real identification, real workers and the Jellyfin fake.

Changes are recorded first, against the media reference (path, title), with
no item id: the worker resolves them through the real Identifier and its
real item index, refreshed from the fake (issue 11's record-first shape).

Actions: viewer actions (progress, watched, unwatched, rewatch); the
server's item listing failing (identification cannot finish: changes wait to
identify) and coming back (the index refreshes: they go out); server outages
and flaky answers; slow-but-applied writes (the server applies a write after
the client's read timeout gave up on it); the process killed idle, right
after the server accepted a change, or in the middle of a request (the
write lands later); a clean quit while a request is held; a second process
on the same queue file claiming and sending at the same time; another
process (in another PID namespace, or whose PID is reused: its PID is alive
here) that records a change, claims it, maybe sends it, and dies while this
worker runs (its owner lock is free); damage to the queue file between two
runs (cut or flipped main file, flipped or cut -wal) and the salvage at the
next open; edits made on the server by another device. After a final drain:
each item on the server holds what the viewer last did (or the other
device's later edit); a watched mark is applied no more often than the
viewer marked it; nothing is left pending, syncing or failed.

Damage is accounted for, not excused: every row the salvage did not carry
over, or carried over changed, must be covered by a damage report whose
"saved" equals the rows the new queue holds and whose "lost" covers the rows
dropped (unless it says more may be gone). Only the items such rows belonged
to are excused from the final-state check (their lost change cannot arrive),
until the viewer acts on them again; a watched mark the damage reverted from
"sent" may be sent once more (counted per item); rows salvaged as failed, or
whose values the damage changed undetectably (README: SQLite keeps no
checksum on values), may stay failed or waiting, never syncing.

A kill is simulated in-process: the backend wrapper raises a BaseException
(the worker's threads die where they stand, leaving claimed rows in
syncing, and a request may still be running in the server), the queue is
closed and re-opened on the same file after the claim leases expire, and a
new worker and identifier start. A real killed subprocess would cost ~0.5 s
per kill, too much for a hypothesis budget; tests/test_exactly_once.py and
`make soak` kill real processes.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections import Counter
from dataclasses import replace
from typing import Dict, Optional, Tuple

import pytest
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from playbacksync.backends import make_backend
from playbacksync.backends.base import Backend
from playbacksync.changes import Change
from playbacksync.config import Config
from playbacksync.identify import Identifier, ItemIndex
from playbacksync.queue import SyncQueue
from playbacksync.tracker.events import MediaRef
from playbacksync.worker import SyncWorker
from playbacksync.worker.sending import send_window
from tests.fakes.mediabrowser import TICKS_PER_SECOND
from tests.test_worker_support import PROGRESS, T0, UNWATCHED, WATCHED, FakeClock, Server, wait_for

ITEMS = 2
LEASE = 120.0
READ_TIMEOUT = 0.25
# Waits on a state the machine must reach; generous, so a loaded machine is not a failure
# (each returns as soon as the state holds).
SETTLE_S = 30.0
LATE = 0.5  # a slow write is applied this long after it came: past the client's read timeout


class Crash(BaseException):
    """The process died (not an Exception: nothing in the worker may catch it)."""


class Killable(Backend):
    """The process's view of the server: dies on command, possibly with a request in flight."""

    def __init__(self, inner: Backend, lister: Backend):
        self.inner = inner
        self.lister = lister  # the item listing needs a longer read timeout than our slow writes
        self.http = inner.http  # the send window comes from the real backend's timeouts
        self.killed = False
        self.crash_after_apply = False
        self.crash_mid_request = False

    def _alive(self):
        if self.killed:
            raise Crash()

    def apply(self, change):
        self._alive()
        if self.crash_mid_request:  # the request is out; the process dies before any answer
            self.crash_mid_request = False
            out = threading.Thread(target=self._send_anyway, args=(change,), daemon=True)
            out.start()
            out.join(0.05)
            self.killed = True
            raise Crash()
        self.inner.apply(change)
        if self.crash_after_apply:  # the server has it; the queue never hears back
            self.killed = True
            raise Crash()

    def _send_anyway(self, change):
        try:
            self.inner.apply(change)
        except Exception:
            pass

    def check(self):
        self._alive()
        return self.inner.check()

    def read_state(self, item_id):
        self._alive()
        return self.inner.read_state(item_id)

    def item_states(self, item_ids):
        self._alive()
        return self.inner.item_states(item_ids)

    def get_item(self, item_id):
        self._alive()
        return self.inner.get_item(item_id)

    def identity(self):
        self._alive()
        return self.lister.identity()

    def count_items(self):
        self._alive()
        return self.lister.count_items()

    def iter_items(self, page_size=None, *, since=None):
        self._alive()
        return self.lister.iter_items(page_size=page_size, since=since)


def drop_owner_lock(queue: SyncQueue) -> None:
    """What the kernel does when the queue's process dies: its owner lock is free, its file stays."""
    if queue._owner_lock.held:
        os.close(queue._owner_lock._fd)
        queue._owner_lock._fd = None


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
        self.server = Server("jf", items=ITEMS, clock=self.clock, read_timeout=READ_TIMEOUT)
        self.config = Config(servers=(self.server.config(),))
        self.applied: Counter = Counter()
        fake = self.server.fake
        original = fake.mark_played

        def counting(uid, iid, when=None):
            self.applied[iid] += 1
            return original(uid, iid, when)
        fake.mark_played = counting
        self.listing_broken = False
        self._wrap_listing(fake)
        self.down = False
        self.late_armed = 0
        # Per item: the latest thing that happened to it, (source, kind, value) — the oracle.
        self.last: Dict[int, Optional[Tuple[str, str, object]]] = {i: None for i in range(ITEMS)}
        self.watched_actions: Counter = Counter()
        self.actions = 0                          # viewer actions so far (their order)
        self.last_action: Dict[int, int] = {}     # item -> number of its latest viewer action
        self.damaged_at: Dict[int, int] = {}      # item -> self.actions when damage touched its rows
        self.damaged_rows: set = set()            # row ids salvaged as failed or changed by damage
        self.resend_slack: Counter = Counter()    # item -> watched marks damage reverted from "sent"
        self.queue = self.worker = self.identifier = None
        self._boot()

    def _wrap_listing(self, fake):
        """While ``listing_broken``, the server's item list answers 503: no index refresh can finish."""
        for i, (method, rx, handler) in enumerate(fake.routes):
            if method == "GET" and rx.pattern.rstrip("$").endswith("/Items"):
                def broken(req, _handler=handler, **kw):
                    if self.listing_broken:
                        from werkzeug.wrappers import Response
                        return Response("busy", status=503)
                    return _handler(req, **kw)
                fake.routes[i] = (method, rx, broken)

    def _boot(self, after_open=None):
        self.queue = SyncQueue(self.dir, clock=self.clock, lease_seconds=LEASE)
        if after_open is not None:
            after_open(self.queue)
        self.killer = Killable(self.server.backend(), make_backend(replace(self.server.config(), read_timeout=10.0)))
        self.identifier = Identifier(self.config, {"jf": self.killer}, ItemIndex(self.dir), clock=self.clock,
                                     min_refresh_interval=30.0)
        self.worker = SyncWorker(self.queue, {"jf": self.killer}, clock=self.clock, poll_interval=0.2,
                                 rng=NoJitter(), conflict_age=600.0, identifier=self.identifier,
                                 recover_interval=0.0)
        self.identifier.on_refreshed.append(self.worker.index_refreshed)
        self.worker.start()
        assert wait_for(lambda: self.worker.server_states()["jf"] != "unknown", SETTLE_S)
        self._settle()

    def _stop_process(self, clean: bool, before_close=None):
        old = self.worker
        if not clean:
            self.killer.killed = True
        old._stopping.set()
        old.notify()
        for lane in old._lanes.values():
            lane.thread.join(5)
            assert not lane.thread.is_alive()
        if clean:
            old.stop(0.2)
        self.identifier.close(2.0)
        self.identifier.index.close()
        if before_close is not None:
            before_close()
        self.queue.close()
        if not clean:
            drop_owner_lock(self.queue)

    def _restart(self, clean: bool = False):
        """The process died (or quit): its claims stay in syncing until their owner is gone."""
        self._stop_process(clean)
        if not clean:
            self._tick(LEASE + 1)
        self._boot()

    def _held_writes_landed(self) -> bool:
        fake = self.server.fake
        with fake.lock:
            unconsumed = sum(t.times for t in fake._trouble if t.methods is not None)
        return fake.late_writes_applied + unconsumed >= self.late_armed

    def _reset_trouble(self):
        """Drop armed misbehaviour; late writes never taken are no longer awaited."""
        fake = self.server.fake
        with fake.lock:
            self.late_armed -= sum(t.times for t in fake._trouble if t.methods is not None)
            fake._trouble.clear()

    def _settled(self) -> bool:
        if self.killer.killed:
            return True
        if any(t.is_alive() for t in list(self.identifier.refresher._threads.values())):
            return False  # an index refresh is running
        # One query, so a row can't slip from pending to syncing between two looks.
        rows = self.queue.rows("jf", ("pending", "syncing"))
        if any(r.status == "syncing" for r in rows):
            return False
        if self.worker.server_states()["jf"] in ("offline", "auth_required"):
            return True
        now = self.clock()
        if self.worker._lanes["jf"].not_before > now:  # the server's Retry-After
            return True
        # Claimable: the oldest pending row of its media, due, and no earlier send of it in doubt.
        first = {}
        for row in rows:
            first.setdefault(row.media_key, row)
        return all(r.next_attempt_at > now or r.unsure_until > now for r in first.values())

    def _settle(self):
        assert wait_for(self._settled, SETTLE_S), f"worker did not settle: {self.queue.counts()}"
        if self.killer.killed:
            self._restart()

    def _tick(self, seconds: float = 1.37):
        # Time moves on only once every write the server holds has landed: in real time a send
        # window closes only after the server stopped working on the request.
        assert wait_for(self._held_writes_landed, SETTLE_S)
        self.clock.advance(seconds)

    # -- the viewer ------------------------------------------------------------
    def _act(self, item: int, kind: str, position_s: float = 0.0):
        self._tick()
        self.queue.enqueue_change(self._change(item, kind, position_s))
        self.worker.notify()
        self._viewer_did(item, kind, position_s)
        self._settle()

    def _viewer_did(self, item: int, kind: str, position_s: float = 0.0):
        self.last[item] = ("viewer", kind, position_s)
        self.actions += 1
        self.last_action[item] = self.actions
        if kind == WATCHED:
            self.watched_actions[item] += 1

    def _change(self, item: int, kind: str, position_s: float = 0.0, item_id: Optional[str] = None) -> Change:
        return Change(media_item_id=item_id, source_id="jf", user_id=self.server.user_id, change_type=kind,
                      position_ms=int(position_s * 1000) if kind == PROGRESS else None, duration_ms=3_600_000,
                      completed=kind == WATCHED, created_at=self.clock(),
                      media=MediaRef(path=f"/m/{item}.mkv", title=f"Item {item}"))

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

    # -- identification ------------------------------------------------------------
    @rule()
    def listing_fails(self):
        """The server's item list cannot be read: nothing can be identified (changes wait)."""
        self.listing_broken = True

    @rule()
    def listing_recovers(self):
        if self.listing_broken:
            self.listing_broken = False
            if not self.down:
                self.identifier.refresh("jf", timeout=SETTLE_S)  # the index refreshes: waiting changes go at once
            self._settle()

    # -- the server and the process ------------------------------------------------
    @rule()
    def outage(self):
        if not self.down:
            # Every connection is reset (RST) until recovery. Not go_down(): a closed
            # ephemeral port can be taken meanwhile, and come_back() would then fail.
            assert wait_for(self._held_writes_landed, SETTLE_S)
            self._reset_trouble()
            self.server.fake.reset_next(times=10 ** 9)
            self.down = True

    @rule()
    def recovery(self):
        if self.down:
            self._reset_trouble()
            self.down = False
            for _ in range(4):  # a probe may meet an armed flaky answer: probe again later
                self._tick(61)  # past any probe backoff
                self.worker.notify()
                if wait_for(lambda: self.killer.killed or self.worker.server_states()["jf"] != "offline", 1):
                    break
            assert self.killer.killed or self.worker.server_states()["jf"] != "offline"
            self._settle()

    @rule(status=st.sampled_from([500, 503, 429]))
    def flaky_answer(self, status):
        if not self.down:
            self.server.fake.fail_next(status, retry_after=2 if status == 429 else None)

    @rule()
    def slow_but_applied_write(self):
        """The next write is applied after the client gave up on it (a timeout for the client)."""
        if not self.down:
            self.server.fake.late_write(LATE)
            self.late_armed += 1

    @rule()
    def crash_idle(self):
        self._restart()

    @rule()
    def crash_after_next_apply(self):
        self.killer.crash_after_apply = True

    @rule()
    def crash_during_next_request(self):
        self.killer.crash_mid_request = True

    @rule(item=st.integers(0, ITEMS - 1))
    def quit_during_a_slow_watched_write(self, item):
        """The viewer marks an item watched and quits while the server holds the write."""
        if self.down or self.listing_broken:
            return
        self.server.fake.late_write(LATE * 2)
        self.late_armed += 1
        self._tick()
        self.queue.enqueue_change(self._change(item, WATCHED))
        self._viewer_did(item, WATCHED)
        self.worker.notify()
        wait_for(lambda: self.killer.killed or any(r.sent_at for r in self.queue.rows("jf", ("syncing",))), 2)
        self._restart(clean=not self.killer.killed)

    @rule()
    def another_process_syncs_meanwhile(self):
        """A second process on the same queue file claims and sends while this one does."""
        other_queue = SyncQueue(self.dir, clock=self.clock, lease_seconds=LEASE)
        other_backend = self.server.backend()
        other_index = ItemIndex(self.dir)
        other_id = Identifier(self.config, {"jf": other_backend}, other_index, clock=self.clock,
                              min_refresh_interval=30.0)
        other = SyncWorker(other_queue, {"jf": other_backend}, clock=self.clock, poll_interval=0.05,
                           rng=NoJitter(), conflict_age=600.0, identifier=other_id)
        try:
            other.start()
            other.process_now()
            self.worker.process_now()
            wait_for(lambda: other.passes("jf") >= 3, 3)
        finally:
            other.stop(2.0)
            other_id.close(2.0)
            other_index.close()
            other_queue.close()
            other_backend.close()
        self._settle()

    @rule(item=st.integers(0, ITEMS - 1), kind=st.sampled_from([WATCHED, UNWATCHED, PROGRESS]),
          stage=st.sampled_from(["claimed", "sending", "applied"]), pid_one=st.booleans())
    def another_process_claims_and_dies(self, item, kind, stage, pid_one):
        """Another process (a player in another PID namespace: its PID 1 is alive here; or with
        a PID now reused: ours) records a change, claims it, perhaps sends it, and is killed. Its
        owner lock is free, its PID alive: the running worker must take the claim back (no
        restart) and send it once."""
        self.worker.pause("jf")  # so the other process, not our lane, claims the change
        self._tick()
        other = SyncQueue(self.dir, clock=self.clock, lease_seconds=LEASE)
        if pid_one:
            other.owner = f"{other.host}:1:{other.owner.rpartition(':')[2]}"
        position = 1234.0 if kind == PROGRESS else 0.0
        rid = other.enqueue_change(self._change(item, kind, position, item_id=self.server.items[item]))
        self._viewer_did(item, kind, position)
        mine = [r for r in other.claim("jf") if r.id == rid]
        if mine and stage != "claimed" and not self.down:
            backend = self.server.backend()
            try:
                seen = backend.read_state(self.server.items[item]).play_count if kind == WATCHED else None
                window = send_window(backend, requests=2 if kind == PROGRESS else 1)
                if other.begin_send(rid, window, seen) and stage == "applied":
                    backend.apply(mine[0])
            except Exception:  # a flaky answer or a held write: its outcome is unknown, as in life
                pass
            finally:
                backend.close()
        # Killed: the kernel drops its lock (the lock file stays); nothing else is written.
        drop_owner_lock(other)
        other._db.close()
        event(f"another process dies: {stage if mine else 'nothing claimed'}")
        self.worker.resume("jf")
        self._settle()  # waits for its rows to leave "syncing": only the running worker can do it

    @rule(kind=st.sampled_from(["cut main file", "flip a byte of the main file", "flip a byte of the -wal",
                                "cut the -wal"]),
          where=st.floats(0.0, 1.0, exclude_max=True), mask=st.integers(1, 255))
    def queue_file_damaged(self, kind, where, mask):
        """Between two runs the queue file is damaged from outside; the next open salvages it."""
        snap = os.path.join(self.dir, "at-stop")
        before: Dict[int, object] = {}

        def snapshot():  # the files as the process left them, -wal included (a crash image)
            before.update({r.id: r for r in self.queue.rows()})
            os.makedirs(snap, exist_ok=True)
            for suffix in ("", "-wal"):
                if os.path.exists(os.path.join(self.dir, "queue.sqlite" + suffix)):
                    shutil.copyfile(os.path.join(self.dir, "queue.sqlite" + suffix),
                                    os.path.join(snap, "queue.sqlite" + suffix))

        self._stop_process(clean=True, before_close=snapshot)
        for suffix in ("", "-wal", "-shm"):
            path = os.path.join(self.dir, "queue.sqlite" + suffix)
            if os.path.exists(path):
                os.remove(path)
            if os.path.exists(os.path.join(snap, "queue.sqlite" + suffix)):
                shutil.copyfile(os.path.join(snap, "queue.sqlite" + suffix), path)
        shutil.rmtree(snap)
        name = "queue.sqlite-wal" if "-wal" in kind else "queue.sqlite"
        path = os.path.join(self.dir, name)
        if not os.path.exists(path) or os.path.getsize(path) == 0:
            name, path = "queue.sqlite", os.path.join(self.dir, "queue.sqlite")
        size = os.path.getsize(path)
        at = int(where * size)
        if kind == "cut the -wal" and name.endswith("-wal"):
            # Inside a frame's page: a cut at a frame boundary looks exactly like a write that
            # never finished (the documented limit, tests/test_queue_damage_properties.py).
            with open(path, "rb") as fh:
                page = int.from_bytes(fh.read(12)[8:12], "big")
            frame = 24 + page
            frames = max(1, (size - 32) // frame)
            at = 32 + int(where * frames) * frame + 24 + 1 + mask * (page - 2) // 256
        with open(path, "r+b") as fh:
            if kind.startswith("cut"):
                fh.truncate(max(1, at))
            else:
                fh.seek(at)
                byte = fh.read(1)[0]
                fh.seek(at)
                fh.write(bytes([byte ^ mask]))
        after: Dict[int, object] = {}
        self._boot(after_open=lambda q: after.update({r.id: r for r in q.rows()}))
        report = self.queue.damage
        event(f"damage: {kind if name.endswith('-wal') == ('-wal' in kind) else kind + ' (no -wal: main file)'}: "
              + ("reported" if report else "no report")
              + (f", rows lost {min(report.lost, 1)}+" if report and report.lost else ""))
        self._account_for_damage(before, after, report, wal_mark=name.endswith("-wal"))

    def _account_for_damage(self, before, after, report, wal_mark: bool):
        assert set(after) <= set(before), "the salvage invented rows"
        dropped = set(before) - set(after)
        kept_fields = ("source_id", "user_id", "change_type", "position_ms", "duration_ms", "created_at",
                       "media_key", "media", "media_item_id")
        changed = {i for i in after if any(getattr(after[i], f) != getattr(before[i], f) for f in kept_fields)}
        reverted = {i for i in after if (before[i].status == "synced" and after[i].status != "synced")
                    or (before[i].sent_at is not None and after[i].sent_at is None)}
        failed = {i for i in after if after[i].status == "failed" and before[i].status != "failed"}
        touched = dropped | changed | reverted | failed
        if dropped or reverted or failed:  # a changed value alone may pass unseen (no checksum on values)
            assert report is not None, f"damage dropped or reverted rows {sorted(touched)} without a message"
        if report is not None:
            assert report.saved == len(after), (report, len(after))
            if not (report.unreadable_file or report.maybe_more):
                # each dropped row counted (a flipped commit mark of a -wal frame may make it one off)
                assert len(dropped) <= report.lost + wal_mark, (report, sorted(dropped))
            assert f"{report.saved} change(s) saved" in report.message()
        self.damaged_rows |= changed | failed
        for i in touched:
            row = before[i]
            item = int(row.media.path.rsplit("/", 1)[-1].split(".")[0])
            self.damaged_at[item] = self.actions
            if row.change_type == WATCHED and (row.status == "synced" or row.sent_at is not None):
                self.resend_slack[item] += 1

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
            self._reset_trouble()
            self.down = False
            self.listing_broken = False
            self.killer.crash_after_apply = self.killer.crash_mid_request = False
            if self.killer.killed:
                self._restart()
            assert wait_for(self._held_writes_landed, SETTLE_S)
            self.identifier.refresh("jf", timeout=SETTLE_S)
            for _ in range(12):  # backoff up to its cap, then everything is due
                self.clock.advance(61)
                self.worker.process_now()
                wait_for(lambda: not self.queue.get_pending("jf", due_only=False) and self._settled(), 2)
                counts = self.queue.counts().get("jf", {})
                if not counts.get("pending") and not counts.get("syncing"):
                    break
            # Nothing stranded: only rows the damage failed or changed may stay failed or waiting.
            left = [r for r in self.queue.rows(None, ("pending", "syncing", "failed"))
                    if r.status == "syncing" or r.id not in self.damaged_rows]
            assert not left, left
            for i in range(ITEMS):
                self._check_item(i)
        finally:
            if self.worker is not None:
                self.worker.stop(1.0)
                self.identifier.close(1.0)
                self.identifier.index.close()
                self.queue.close()
            self.server.stop()
            shutil.rmtree(self.dir, ignore_errors=True)

    def _check_item(self, i: int):
        s = self.server
        iid = s.items[i]
        state = s.state(i)
        assert self.applied[iid] <= self.watched_actions[i] + self.resend_slack[i], \
            "a watched change was applied twice"
        if i in self.damaged_at:
            # A change of this item was lost or changed by (reported) damage: its final state is
            # known again only after a later viewer action, once no damaged row of it is waiting.
            if self.last_action.get(i, 0) <= self.damaged_at[i] or any(
                    r.id in self.damaged_rows and r.media.path == f"/m/{i}.mkv"
                    for r in self.queue.rows(None, ("pending", "failed"))):
                return
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


ViewerAndServer.TestCase.settings = settings(
    max_examples=int(os.environ.get("WK_EX", "30")), stateful_step_count=14, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    # Each step runs real threads and HTTP: shrinking a failure may take minutes; WK_NOSHRINK=1 skips it.
    phases=[Phase.explicit, Phase.reuse, Phase.generate] + ([] if os.environ.get("WK_NOSHRINK") else [Phase.shrink]))
TestViewerAndServer = ViewerAndServer.TestCase
