"""The worker against the spec-validating fakes over real HTTP, with a real SQLite queue.

Time that the worker schedules by (backoff, Retry-After, probes, conflict age)
runs on a FakeClock the tests advance, so nothing here sleeps through a backoff.
"""
from __future__ import annotations

import random
import subprocess
import sys
import threading
import time

import pytest

from playbacksync.changes import FAILED, PENDING, SUPERSEDED, SYNCED
from playbacksync.queue import SyncQueue
from playbacksync.worker import SyncWorker
from tests.fakes.base import fail_on_spec_violations  # noqa: F401
from tests.fakes.plex import PlexHarness
from tests.test_worker_support import (PROGRESS, UNWATCHED, WATCHED, FakeClock, Recorder, Server, full_pass, open_rows,
                                      wait_for)


class NoJitter(random.Random):
    def random(self):
        return 0.0


class Env:
    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.clock = FakeClock()
        self.queue = SyncQueue(str(tmp_path), clock=self.clock)
        self.servers = []
        self.workers = []
        self.events = Recorder()

    def server(self, source_id="jf", **kw):
        s = Server(source_id, clock=self.clock, **kw)
        self.servers.append(s)
        return s

    def worker(self, *servers, start=True, **kw):
        kw.setdefault("poll_interval", 0.2)
        kw.setdefault("rng", NoJitter())
        w = SyncWorker(self.queue, {s.source_id: s.backend() for s in servers}, clock=self.clock, **kw)
        w.subscribe(self.events)
        self.workers.append(w)
        if start:
            w.start()
        return w

    def enqueue(self, server, item, kind, worker=None, *, position_s=0, age=0.0):
        rid = self.queue.enqueue_change(server.change(item, kind, position_s=position_s,
                                                      created_at=self.clock() - age))
        for w in ([worker] if worker else self.workers):
            w.notify()
        return rid

    def row(self, rid):
        return self.queue.get(rid)

    def close(self):
        for w in self.workers:
            w.stop(1.0)
        self.queue.close()
        for s in self.servers:
            s.stop()


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path)
    yield e
    e.close()


def settled(env, rid, status):
    return wait_for(lambda: env.row(rid).status == status, 5.0)


def online(w, sid):
    return wait_for(lambda: w.server_states().get(sid) == "online", 5.0)


# -- life cycle --------------------------------------------------------------------
def test_nothing_starts_at_import_or_construction(tmp_path, env):
    code = ("import threading, playbacksync.worker, playbacksync.worker.worker, playbacksync.worker.lane; "
            "print(threading.active_count())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"
    s = env.server()
    before = {t.name for t in threading.enumerate()}
    w = env.worker(s, start=False)
    rid = env.enqueue(s, 0, WATCHED)
    assert {t.name for t in threading.enumerate()} == before  # no thread exists to send anything
    assert env.row(rid).status == PENDING and not s.state(0).played and s.writes() == 0
    w.start()
    assert settled(env, rid, SYNCED) and s.state(0).played
    assert any(t.name == "playback-sync-worker:jf" and t.daemon for t in threading.enumerate())


def test_notify_wakes_at_once_and_polling_is_the_fallback(env):
    s = env.server()
    w = env.worker(s, poll_interval=30.0)
    assert online(w, "jf")
    t = time.monotonic()
    rid = env.enqueue(s, 0, WATCHED, w)
    assert settled(env, rid, SYNCED)
    assert time.monotonic() - t < 1.0  # far below the 30 s poll
    # Without notify(): the poll picks it up (poll_interval 0.2 s here).
    w2 = env.worker(env.server("jf2"), poll_interval=0.2)
    s2 = env.servers[-1]
    assert online(w2, "jf2")
    rid2 = env.queue.enqueue_change(s2.change(1, WATCHED, created_at=env.clock()))
    assert settled(env, rid2, SYNCED) and s2.state(1).played
    assert env.events.of("completed")[0].change.id == rid


def test_stop_is_quick_when_idle_and_the_threads_exit(env):
    s = env.server()
    w = env.worker(s, poll_interval=30.0)
    assert online(w, "jf")
    t = time.monotonic()
    assert w.stop(3.0) is True
    assert time.monotonic() - t < 0.5
    assert not any(th.name.startswith("playback-sync-worker") for th in threading.enumerate())
    with pytest.raises(RuntimeError):
        w.start()


# -- what goes out ---------------------------------------------------------------------
def test_only_the_latest_position_goes_out_and_items_keep_order(env):
    s = env.server()
    w = env.worker(s, start=False)
    for pos in (10, 20, 30):
        env.enqueue(s, 0, PROGRESS, position_s=pos)
    env.enqueue(s, 1, WATCHED)
    last = env.enqueue(s, 1, PROGRESS, position_s=42)  # rewatch: after the watched mark
    w.start()
    assert wait_for(lambda: open_rows(env.queue) == 0)
    posts = [r for r in s.fake.requests if r.method == "POST" and "/UserData" in r.path]
    assert len(posts) == 2  # one progress per item: 30 s for item 0, 42 s for item 1
    assert s.position_s(0) == 30 and s.position_s(1) == 42 and s.state(1).played
    assert s.state(1).play_count == 1
    assert env.row(last).resolution == "applied"
    # item 1: the played mark went out before the rewatch position
    order = [r.path for r in s.fake.requests if s.items[1] in r.path and r.method == "POST"]
    assert order[0].startswith("/UserPlayedItems/") and "/UserData" in order[1]


def test_a_failing_item_does_not_block_others(env):
    s = env.server()
    w = env.worker(s)
    assert online(w, "jf")
    gone = env.enqueue(s, 0, WATCHED)
    s.fake.remove_item(s.items[0])  # 404: permanent
    ok = env.enqueue(s, 1, WATCHED)
    assert settled(env, gone, FAILED) and settled(env, ok, SYNCED)
    bad = env.row(gone)
    assert bad.error_message and "404" in bad.error_message
    assert [e.change.id for e in env.events.of("failed")] == [gone]


# -- retry schedule on the worker's clock ------------------------------------------------
def test_retry_schedule_1_2_4_8_then_failed_and_retryable(env):
    s = env.server()
    w = env.worker(s)
    assert online(w, "jf")
    s.fake.fail_next(500)
    rid = env.enqueue(s, 0, WATCHED)
    waits = []
    for attempt in range(1, 5):
        assert wait_for(lambda: env.row(rid).attempt_count == attempt and env.row(rid).status == PENDING)
        r = env.row(rid)
        waits.append(r.next_attempt_at - env.clock())
        assert "500" in r.error_message
        # Not due yet: nothing is sent before the backoff ends.
        n = len(s.fake.requests)
        assert full_pass(w, "jf")
        assert len(s.fake.requests) == n
        s.fake.fail_next(500)
        env.clock.advance(waits[-1])
        w.notify()
    assert waits == [1, 2, 4, 8]
    assert settled(env, rid, FAILED)
    assert env.row(rid).attempt_count >= 4 and not s.state(0).played
    assert [e.change.id for e in env.events.of("failed")] == [rid]
    assert w.server_states()["jf"] == "online"  # the server answered check() every time
    assert env.queue.get_failed_retryable("jf")[0].id == rid
    assert w.retry_failed("jf") == 1
    assert settled(env, rid, SYNCED) and s.state(0).play_count == 1


def test_429_retry_after_is_honoured(env):
    s = env.server()
    w = env.worker(s)
    assert online(w, "jf")
    s.fake.fail_next(429, retry_after=30)
    rid = env.enqueue(s, 0, WATCHED)
    assert wait_for(lambda: env.row(rid).attempt_count == 1)
    assert env.row(rid).next_attempt_at == pytest.approx(env.clock() + 30)
    other = env.enqueue(s, 1, WATCHED)  # the whole server waits, not just that item
    env.clock.advance(29)
    assert full_pass(w, "jf", force=True)  # "sync now" still honours the server's Retry-After
    assert not s.state(0).played and not s.state(1).played
    env.clock.advance(1.5)
    w.notify()
    assert settled(env, rid, SYNCED) and settled(env, other, SYNCED)
    assert s.state(0).play_count == 1


def test_connection_reset_is_retried_after_backoff(env):
    s = env.server()
    w = env.worker(s)
    assert online(w, "jf")
    s.fake.reset_next(1)
    rid = env.enqueue(s, 0, WATCHED)
    assert wait_for(lambda: env.row(rid).attempt_count == 1 and env.row(rid).status == PENDING)
    assert "connection" in env.row(rid).error_message.lower()
    assert w.server_states()["jf"] == "online"
    env.clock.advance(1)
    w.notify()
    assert settled(env, rid, SYNCED) and s.state(0).play_count == 1


def test_process_now_skips_backoff(env):
    s = env.server()
    w = env.worker(s)
    assert online(w, "jf")
    s.fake.fail_next(503)
    rid = env.enqueue(s, 0, WATCHED)
    assert wait_for(lambda: env.row(rid).attempt_count == 1 and env.row(rid).status == PENDING)
    w.process_now()
    assert settled(env, rid, SYNCED)


# -- offline, auth, pause ---------------------------------------------------------------------
def test_outage_then_recovery_counts_no_attempts(env):
    s = env.server()
    s.fake.go_down()
    w = env.worker(s)
    assert wait_for(lambda: w.server_states()["jf"] == "offline")
    rid = env.enqueue(s, 0, WATCHED)
    rid2 = env.enqueue(s, 1, PROGRESS, position_s=300)
    assert full_pass(w, "jf")
    assert env.row(rid).status == PENDING and env.row(rid).attempt_count == 0
    # Probing backs off 1, 2, 4 … on the worker's clock; only check() is tried meanwhile.
    for step in (1, 2, 4):
        env.clock.advance(step)
        assert full_pass(w, "jf")
    s.fake.come_back()
    env.clock.advance(8)
    w.notify()
    assert settled(env, rid, SYNCED) and settled(env, rid2, SYNCED)
    assert s.state(0).played and s.position_s(1) == 300
    kinds = env.events.kinds("jf")
    assert kinds.index("offline") < kinds.index("online")
    assert env.row(rid).attempt_count == 1  # only the send that worked counts


def test_offline_server_does_not_block_another(env):
    a, b = env.server("a"), env.server("b")
    a.fake.go_down()
    w = env.worker(a, b)
    ra = env.enqueue(a, 0, WATCHED)
    rb = env.enqueue(b, 0, WATCHED)
    assert settled(env, rb, SYNCED)
    assert w.server_states() == {"a": "offline", "b": "online"}
    assert env.row(ra).status == PENDING


def test_slow_server_does_not_delay_another(env):
    a, b = env.server("a", read_timeout=5.0), env.server("b")
    w = env.worker(a, b)
    assert online(w, "a") and online(w, "b")
    a.fake.delay(2.0, times=5)
    env.enqueue(a, 0, WATCHED)
    t = time.monotonic()
    rb = env.enqueue(b, 0, WATCHED)
    assert settled(env, rb, SYNCED)
    assert time.monotonic() - t < 1.0


def test_auth_error_pauses_until_settings_change(env):
    s = env.server()
    w = env.worker(s)
    assert online(w, "jf")
    s.fake.revoke_token(s.token)
    rid = env.enqueue(s, 0, WATCHED)
    # The lane flags the server, then gives the row back: wait for both.
    assert wait_for(lambda: w.server_states()["jf"] == "auth_required" and env.row(rid).status == PENDING)
    assert env.row(rid).attempt_count == 0
    assert len(env.events.of("auth_required")) == 1
    n = len(s.fake.requests)
    env.clock.advance(600)
    assert full_pass(w, "jf", force=True)
    assert len(s.fake.requests) == n  # neither sends nor probes
    new = s.fake.issue_token(s.user_id)
    w.set_backend("jf", s.backend(token=new))
    assert settled(env, rid, SYNCED) and s.state(0).played
    assert w.server_states()["jf"] == "online"


def test_pause_and_resume(env):
    s = env.server()
    w = env.worker(s)
    assert online(w, "jf")
    w.pause("jf")
    assert w.server_states()["jf"] == "paused"
    rid = env.enqueue(s, 0, WATCHED)
    assert full_pass(w, "jf")
    assert env.row(rid).status == PENDING and s.writes() == 0
    w.resume("jf")
    assert settled(env, rid, SYNCED)


# -- conflicts -----------------------------------------------------------------------------------
def test_change_that_waited_does_not_overwrite_a_newer_edit(env):
    s = env.server()
    w = env.worker(s, conflict_age=60)
    assert online(w, "jf")
    w.pause()
    rid = env.enqueue(s, 0, PROGRESS, position_s=100, age=300)   # made 5 minutes ago
    # Meanwhile another device watched to 1500 s, two minutes ago.
    s.fake.set_user_data(s.user_id, s.items[0], position_ticks=1500 * 10_000_000,
                         last_played=env.clock() - 120)
    ok = env.enqueue(s, 1, PROGRESS, position_s=200, age=300)      # no newer edit there
    w.resume()
    assert settled(env, rid, SYNCED) and settled(env, ok, SYNCED)
    assert env.row(rid).resolution == SUPERSEDED and "after this change was made" in env.row(rid).error_message
    assert s.position_s(0) == 1500 and s.position_s(1) == 200
    assert [e.change.id for e in env.events.of("superseded")] == [rid]


def test_live_changes_are_applied_as_made_rewind_and_unwatch(env):
    s = env.server()
    w = env.worker(s)
    assert online(w, "jf")
    env.clock.advance(1)  # the viewer acts after the worker found the server
    # Another device's edit a moment ago; the viewer rewinds now: a live change, applied.
    s.fake.set_user_data(s.user_id, s.items[0], position_ticks=900 * 10_000_000, played=True, play_count=1,
                         last_played=env.clock() + 5)
    r1 = env.enqueue(s, 0, PROGRESS, position_s=60)
    assert settled(env, r1, SYNCED) and env.row(r1).resolution == "applied"
    assert s.position_s(0) == 60
    r2 = env.enqueue(s, 0, UNWATCHED)
    assert settled(env, r2, SYNCED) and not s.state(0).played


def test_a_write_refused_at_connect_is_not_in_doubt_and_the_outage_costs_one_write(env):
    """The server went away unnoticed: the next write is refused before any connection exists, so
    nothing went out. That send is settled (not "in doubt"), the positions played meanwhile
    coalesce into the same row, and the item costs one write when the server is back (it cost
    two: the refused row waited out its doubt and was sent, then the newer one)."""
    s = env.server()
    w = env.worker(s)
    assert online(w, "jf")
    env.clock.advance(5)  # a change newer than the server's return: sent without a state read
    s.fake.go_down()
    first = env.enqueue(s, 0, PROGRESS, position_s=60)
    assert wait_for(lambda: w.server_states()["jf"] == "offline")
    assert wait_for(lambda: env.row(first).status == PENDING)
    assert env.row(first).sent_at is None  # refused at connect: nothing can land
    for pos in (120, 180):
        env.enqueue(s, 0, PROGRESS, position_s=pos)
    assert [r.id for r in env.queue.rows(statuses=(PENDING,))] == [first]  # one row for the item
    s.fake.clear_log()
    s.fake.come_back()
    env.clock.advance(8)
    w.notify()
    assert settled(env, first, SYNCED)
    assert s.position_s(0) == 180 and s.writes() == 1


def test_a_server_restarted_under_a_kept_connection_gets_each_mark_once(env):
    """Real servers keep connections open, so a restart leaves the worker a pooled connection that
    is dead. The next change must go out on a new one, at its first attempt, and every mark must
    land exactly once (a write on the dead connection could not be told from one in doubt)."""
    s = env.server(keep_alive=True)
    w = env.worker(s)
    first = env.enqueue(s, 0, WATCHED)
    assert settled(env, first, SYNCED)
    before = {r.client for r in s.fake.requests}
    s.fake.go_down()  # the restart: every open connection is cut, the port answers again
    s.fake.come_back()
    second = env.enqueue(s, 1, WATCHED)
    assert settled(env, second, SYNCED)
    assert env.row(second).attempt_count == 1, env.row(second).error_message
    assert s.state(0).played and s.state(1).played
    assert s.played_requests(0) == 1 and s.played_requests(1) == 1
    after = [r.client for r in s.fake.requests if r.client not in before]
    assert after, "the requests after the restart came on the old connection"
    assert not env.events.of("failed")


def test_change_from_before_the_server_came_back_is_checked(env):
    s = env.server()
    s.fake.go_down()
    w = env.worker(s)
    assert wait_for(lambda: w.server_states()["jf"] == "offline")
    rid = env.enqueue(s, 0, WATCHED)  # 0 s old, but made while the server was away
    s.fake.come_back()
    s.fake.set_user_data(s.user_id, s.items[0], position_ticks=5 * 10_000_000, last_played=env.clock() + 1)
    env.clock.advance(2)
    w.notify()
    assert settled(env, rid, SYNCED) and env.row(rid).resolution == SUPERSEDED
    assert not s.state(0).played


# -- events and shutdown -----------------------------------------------------------------------------
def test_a_raising_subscriber_never_kills_the_worker(env):
    s = env.server()
    w = env.worker(s)

    def boom(event):
        raise RuntimeError("subscriber bug")
    w.subscribe(boom)
    r1 = env.enqueue(s, 0, WATCHED)
    r2 = env.enqueue(s, 1, WATCHED)
    assert settled(env, r1, SYNCED) and settled(env, r2, SYNCED)
    unsub = w.subscribe(boom)
    unsub()
    assert {"online", "progress", "completed"} <= set(env.events.kinds())


def test_stop_abandons_a_stuck_request_within_its_deadline_and_loses_nothing(env, tmp_path):
    s = env.server(read_timeout=10.0)
    w = env.worker(s)
    assert online(w, "jf")
    env.clock.advance(1)
    s.fake.late_write(1.5)
    rid = env.enqueue(s, 0, WATCHED)
    assert wait_for(lambda: env.row(rid).sent_at is not None)  # the write is out
    t = time.monotonic()
    assert w.stop(0.4) is True  # the request is cut near the deadline: no thread outlives stop()
    assert time.monotonic() - t < 0.7
    row = env.row(rid)
    assert row.status == PENDING and row.unsure_until > env.clock()  # given back, in doubt
    # The abandoned request still lands on the server later; the next run must not apply it twice.
    assert wait_for(lambda: s.state(0).played, 3.0)
    w2 = env.worker(s)
    env.clock.advance(row.unsure_until - env.clock() + 0.01)  # the first send's window has closed
    w2.process_now()
    assert settled(env, rid, SYNCED)
    assert env.row(rid).resolution == "applied" and "not sent again" in env.row(rid).error_message
    assert s.state(0).play_count == 1 and s.played_requests(0) == 1
    assert w2.stop(1.0)


def test_stop_mid_batch_returns_unsent_rows_to_pending(env):
    s = env.server(items=6)
    w = env.worker(s, connections=1, start=False)
    ids = [env.enqueue(s, i, WATCHED) for i in range(6)]
    s.fake.delay(0.3, times=6)
    w.start()
    assert wait_for(lambda: s.state(0).played or env.row(ids[0]).status == "syncing")
    assert w.stop(1.0)
    statuses = [env.row(i).status for i in ids]
    assert "syncing" not in statuses and PENDING in statuses
    done = sum(1 for i in ids if env.row(i).status == SYNCED)
    assert done == sum(1 for i in range(6) if s.state(i).played)


# -- another server type -------------------------------------------------------------------------------
def test_plex_down_does_not_block_jellyfin_and_catches_up(env):
    plex = PlexHarness().start()
    try:
        jf = env.server()
        key = plex.add_item("Some Movie", runtime_s=1000)
        plex.fake.go_down()
        w = SyncWorker(env.queue, {"plex": plex.backend(id="plex"), "jf": jf.backend()}, clock=env.clock,
                       poll_interval=0.2, rng=NoJitter())
        env.workers.append(w)
        w.start()
        from playbacksync.changes import Change
        rp = env.queue.enqueue_change(Change(key, "plex", "", PROGRESS, position_ms=400_000, duration_ms=1_000_000,
                                             created_at=env.clock()))
        rj = env.enqueue(jf, 0, WATCHED)
        assert settled(env, rj, SYNCED)
        assert wait_for(lambda: w.server_states()["plex"] == "offline")
        plex.fake.come_back()
        env.clock.advance(2)
        w.notify()
        assert settled(env, rp, SYNCED)
        assert plex.state(key).position_ms == 400_000
        rw = env.queue.enqueue_change(Change(key, "plex", "", WATCHED, created_at=env.clock() + 5))
        w.notify()
        assert settled(env, rw, SYNCED) and plex.state(key).play_count == 1
    finally:
        plex.stop()


def test_plex_stamp_of_our_own_write_is_not_taken_for_another_device(env):
    """Plex stamps lastViewedAt with its own clock in whole seconds: right after we mark an
    item watched, a rewatch position made within that second that had to be retried must
    still go out (the newer stamp is ours, not another device's)."""
    from playbacksync.changes import Change

    plex = PlexHarness().start()
    try:
        plex.fake.library.clock = env.clock
        key = plex.add_item("Some Movie", runtime_s=1000)
        w = SyncWorker(env.queue, {"plex": plex.backend(id="plex")}, clock=env.clock, poll_interval=0.2,
                       rng=NoJitter())
        env.workers.append(w)
        w.start()
        assert online(w, "plex")
        env.clock.advance(10.2)
        rw = env.queue.enqueue_change(Change(key, "plex", "", WATCHED, created_at=env.clock()))
        w.notify()
        assert settled(env, rw, SYNCED)
        env.clock.advance(0.3)  # the rewatch starts within the same second
        plex.fake.fail_next(500)
        rp = env.queue.enqueue_change(Change(key, "plex", "", PROGRESS, position_ms=30_000, duration_ms=1_000_000,
                                             created_at=env.clock()))
        w.notify()
        assert wait_for(lambda: env.row(rp).attempt_count == 1 and env.row(rp).status == PENDING)
        env.clock.advance(1)
        w.notify()
        assert settled(env, rp, SYNCED)
        assert env.row(rp).resolution == "applied"
        assert plex.state(key).position_ms == 30_000 and plex.state(key).play_count == 1
    finally:
        plex.stop()


@pytest.mark.parametrize("version", ["10.8.13", "10.10.7"])
def test_backlog_after_an_offline_spell_reads_states_in_batches(env, version):
    # 30 changes older than the conflict age: each needs the server's state before it is sent.
    # One batched read per batch instead of one read per change; a change another device
    # overtook is still kept out.
    s = env.server(items=30, version=version)
    rows = [env.enqueue(s, i, PROGRESS, position_s=600 + i, age=3600) for i in range(30)]
    s.fake.set_user_data(s.user_id, s.items[7], position_ticks=0, last_played=env.clock())  # another device, later
    s.fake.clear_log()
    env.worker(s, batch_size=50)
    assert wait_for(lambda: open_rows(env.queue) == 0, 20)
    reads = [r for r in s.fake.requests if r.method == "GET" and r.path.endswith("/Items")]
    assert len(reads) == 1 and len(reads[0].query.get("ids", [""])[0].split(",")) == 30
    assert env.row(rows[7]).resolution == SUPERSEDED
    assert all(abs(s.position_s(i) - (600 + i)) < 1 for i in range(30) if i != 7)


def test_an_identified_item_gone_from_the_server_is_identified_again_not_failed(env):
    """Stale identification: the row names an item the server no longer has (deleted, the file
    re-added as a new item since). Not a hard failure, never a guess: the row waits to be
    identified again, the index refreshes, and the change lands on the item that has the file now."""
    from dataclasses import replace as dc_replace

    from playbacksync.config import Config
    from playbacksync.identify import Identifier, ItemIndex
    from playbacksync.tracker.events import MediaRef

    s = env.server()
    ident = Identifier(Config(servers=(s.config(),)), {"jf": s.backend()}, ItemIndex(env.tmp / "index"),
                       clock=env.clock)
    try:
        assert ident.refresh("jf", timeout=10) == {"jf": None}
        w = env.worker(s, identifier=ident)
        ident.on_refreshed.append(w.index_refreshed)
        assert online(w, "jf")
        w.pause()
        change = dc_replace(s.change(0, WATCHED, created_at=env.clock()), media=MediaRef(path="/m/0.mkv"))
        rid = env.queue.enqueue_change(change)  # identified as item 0 when it was played
        old = s.items[0]
        s.fake.remove_item(old)
        new = s.fake.add_item("Item 0", path="/m/0.mkv", runtime_s=3600)
        w.resume()
        w.notify()
        assert settled(env, rid, SYNCED)
        row = env.row(rid)
        assert row.media_item_id == new and s.fake.user_data(s.user_id, new).played
        assert not env.events.of("failed")
    finally:
        ident.close()


def test_changes_identified_on_a_server_since_replaced_are_never_sent_to_the_new_one(env, tmp_path):
    """Changes identified while one Plex answered; another Plex (a reinstall: same files, other
    rating keys, 101 now another film) answers at the address when the sender comes back. The
    change goes to the new server's item for its file; a change played from the old server's URL
    fails with the reason; the film that now has key 101 is never touched."""
    from playbacksync.backends import make_backend
    from playbacksync.changes import Change
    from playbacksync.config import Config, PathMapping, ServerConfig
    from playbacksync.identify import Identifier, ItemIndex
    from playbacksync.tracker.events import MediaRef
    from tests.fakes.plex import FakePlex
    from tests.fakes.plex_state import Item

    with FakePlex() as plex:
        server = ServerConfig(id="plex", type="plex", url=plex.url, token=plex.token, device_id="d",
                              path_mappings=(PathMapping("/mnt/nas", "/srv/media"),))
        ident = Identifier(Config(servers=(server,)), {"plex": make_backend(server)}, ItemIndex(tmp_path / "ix"),
                           clock=env.clock)
        try:
            assert ident.refresh("plex", timeout=10) == {"plex": None}
            film = MediaRef(path="/mnt/nas/Movies/Movie 1 (2001)/Movie 1.mkv")
            by_path = env.queue.enqueue_change(Change("101", "plex", "", WATCHED, created_at=env.clock(),
                                                      media=film))
            by_url = env.queue.enqueue_change(Change("102", "plex", "", WATCHED, created_at=env.clock(),
                                                     media=MediaRef(path=plex.url + "/library/metadata/102")))
            # reinstalled behind the same address while nothing was sent
            plex.machine_id = "f" * 32
            items = dict(plex.library.items)
            plex.library.items.clear()
            for key, item in items.items():
                new_key = {"101": "901", "102": "101", "103": "102"}.get(key, key)
                plex.library.add_item(Item(**{**item.__dict__, "rating_key": new_key}))
            w = SyncWorker(env.queue, {"plex": make_backend(server)}, clock=env.clock, poll_interval=0.2,
                           rng=NoJitter(), identifier=ident)
            ident.on_refreshed.append(w.index_refreshed)
            ident.on_replaced.append(w.server_replaced)
            env.workers.append(w)
            w.start()
            assert settled(env, by_path, SYNCED) and env.row(by_path).media_item_id == "901", (env.row(by_path), env.clock())
            assert settled(env, by_url, FAILED) and "another server answers" in env.row(by_url).error_message
            assert plex.library.state(plex.token, "901").view_count == 1
            for key in ("101", "102"):  # what the old keys name now: untouched
                assert plex.library.state(plex.token, key).view_count == 0
        finally:
            ident.close()


def test_stop_ends_a_lane_stuck_in_a_slow_request_within_its_deadline(env):
    """A request the server holds past stop()'s deadline is abandoned, not waited out: no thread the
    worker started outlives stop() (a lingering one kept a stopped worker's lane alive for up to the read
    timeout), and the change goes back to the queue in doubt, not lost."""
    s = env.server("held", read_timeout=30.0)
    w = env.worker(s)
    assert online(w, "held")
    s.fake.late_write(20.0)  # the next write: held 20 s, well inside the 30 s read timeout
    rid = env.enqueue(s, 0, UNWATCHED, w)
    assert wait_for(lambda: s.fake.requests and s.fake.requests[-1].method == "DELETE", 5.0)  # it is out
    t = time.monotonic()
    assert w.stop(1.0) is True
    assert time.monotonic() - t < 1.5
    assert not [th.name for th in threading.enumerate() if th.name.startswith("playback-sync-") and ":held" in th.name]
    row = env.row(rid)
    assert row.status == PENDING and row.sent_at is not None  # back in the queue, its send in doubt
