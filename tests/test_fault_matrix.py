"""Fault matrix: every server type x every fault, through the real SyncWorker, a real
queue file and the real backends over HTTP to the spec-validating fakes.

Reactions (the worker's contract):
  transient (5xx, 429, timeout, reset, refused, malformed JSON, slow body)
      -> retried with backoff, synced once the fault clears;
  503/429 with Retry-After -> nothing sent to that server before it, then synced;
  connection refused -> server offline (no attempt counted), synced when it is back;
  401/403 -> server paused (auth_required event), attempts not counted, synced after set_backend;
  404 or 400 -> failed with the server's message kept; retry_failed sends it again;
  redirect to another host -> the token is not carried there and the change is not lost.
Nothing is lost: at the end each change is on the server, exactly once for watched marks.

The worker's clock is a settable clock (backoff and Retry-After pass by advancing it).
"""
from __future__ import annotations

import random
import threading
import time

import pytest

from playbacksync.backends.http import redact
from playbacksync.changes import APPLIED, FAILED, PENDING, PROGRESS, SYNCED, WATCHED, Change
from playbacksync.queue import SyncQueue
from playbacksync.worker import SyncWorker
from tests.backend_matrix import EmbyHarness, JellyfinHarness
from tests.fakes.base import FakeServer, fail_on_spec_violations  # noqa: F401  (autouse)
from tests.fakes.plex import PlexHarness
from tests.test_worker_support import full_pass

READ_TIMEOUT = 0.6


class Clock:
    """Wall-clock seconds that move only when told (queue and worker share it)."""

    def __init__(self):
        self._t = time.time()
        self._lock = threading.Lock()

    def __call__(self):
        with self._lock:
            return self._t

    def advance(self, seconds):
        with self._lock:
            self._t += seconds


class NoJitter(random.Random):
    def random(self):
        return 0.0


class Elsewhere(FakeServer):
    """Another host a redirect may point at: it records what it got and answers 200 {} to anything,
    like a captive portal or a stranger's server would."""

    def _respond(self, req, body, environ):
        from tests.fakes.base import json_response

        return json_response({})


HARNESSES = {"plex": PlexHarness, "jellyfin": lambda: JellyfinHarness("10.10.7"), "emby": EmbyHarness}


@pytest.fixture(scope="module", params=sorted(HARNESSES))
def harness(request):
    h = HARNESSES[request.param]().start()
    yield h
    h.fake.come_back()
    h.stop()


class Rig:
    def __init__(self, h, tmp_path):
        self.h = h
        self.clock = Clock()
        self.queue = SyncQueue(str(tmp_path), clock=self.clock)
        self.source = h.server_config().id
        # The server stamps its own dates with the same clock, so "made before it was saved" holds.
        if hasattr(h.fake, "library"):
            h.fake.library.clock = self.clock
        else:
            h.fake.now = self.clock
        self.events = []
        self.worker = SyncWorker(self.queue, {self.source: self.backend()}, clock=self.clock, poll_interval=0.05,
                                 rng=NoJitter(), max_attempts=5, backoff_base=1.0, backoff_cap=60.0)
        self.worker.subscribe(self.events.append)
        self.worker.start()

    def backend(self):
        return self.h.backend(read_timeout=READ_TIMEOUT, connect_timeout=0.5)

    def change(self, item, kind, position_ms=None):
        return Change(media_item_id=item, source_id=self.source, user_id=self.h.user_id or "", change_type=kind,
                      position_ms=position_ms, duration_ms=3_600_000, completed=kind == WATCHED,
                      created_at=self.clock())

    def send(self, item, kind, position_ms=None):
        rid = self.queue.enqueue_change(self.change(item, kind, position_ms))
        self.worker.notify()
        return rid

    def row(self, rid):
        return self.queue.get(rid)

    def later(self, seconds):
        """The fake clock moves on and the worker wakes (retries become due)."""
        self.clock.advance(seconds)
        self.worker.notify()

    def wait(self, pred, timeout=8.0, what="condition"):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred():
                return
            time.sleep(0.01)
        assert pred(), f"timed out waiting for {what}; rows {self.queue.rows()}; events {self.kinds()}"

    def wait_status(self, rid, status, **kw):
        self.wait(lambda: self.row(rid).status == status, what=f"row {rid} {status}", **kw)

    def kinds(self):
        return [e.kind for e in list(self.events)]

    def warm_up(self):
        """One change synced first: the worker is online, so the fault hits the change's own request."""
        item = self.h.add_item("Warm-up", f"/srv/media/warm {id(self)}.mkv")
        self.wait_status(self.send(item, PROGRESS, 61_000), SYNCED)
        self.clock.advance(1.0)  # later changes are live ones (no conflict read): the fault hits the write

    def close(self):
        self.worker.stop(1.0)
        self.queue.close()


@pytest.fixture
def rig(harness, tmp_path):
    harness.fake.reset_trouble()
    harness.fake.come_back()
    r = Rig(harness, tmp_path)
    r.warm_up()
    yield r
    r.close()
    harness.fake.reset_trouble()
    harness.fake.come_back()


def on_server(h, item, kind, position_ms):
    st = h.state(item)
    if kind == WATCHED:
        return st.played and st.play_count == 1
    return st.position_ms == position_ms


def assert_no_token(rig, *texts):
    for t in texts:
        assert rig.h.token not in (t or ""), t


# -- transient faults ----------------------------------------------------------------

TRANSIENT = {
    "500": lambda f: f.fail_next(500, body={"message": "boom"}),
    "502": lambda f: f.fail_next(502, body="Bad Gateway"),
    "429": lambda f: f.fail_next(429),
    "timeout": lambda f: f.delay(READ_TIMEOUT + 0.6),
    "connection-reset": lambda f: f.reset_next(),
    "malformed-json": lambda f: f.malformed_next(),
    "slow-body": lambda f: f.delay(READ_TIMEOUT + 0.6, body=True),
}


@pytest.mark.parametrize("kind", [PROGRESS, WATCHED])
@pytest.mark.parametrize("fault", sorted(TRANSIENT))
def test_transient_fault_is_retried_with_backoff_then_synced(rig, fault, kind):
    h = rig.h
    item = h.add_item(f"T {fault} {kind}", f"/srv/media/t {fault} {kind}.mkv")
    position = 754_000 if kind == PROGRESS else None
    TRANSIENT[fault](h.fake)
    rid = rig.send(item, kind, position)
    rig.wait(lambda: rig.row(rid).status != "syncing" and (rig.row(rid).attempt_count or rig.row(rid).status == SYNCED),
             what="the first attempt to finish")
    row = rig.row(rid)
    if row.status == SYNCED:
        # Some faults can't hurt some requests: a body the client never reads (204), or a
        # malformed body on a route whose answer is not read, is no failure at all. The
        # change must then really be on the server.
        assert fault in ("malformed-json", "slow-body"), row
        assert on_server(h, item, kind, position), (fault, kind, h.state(item))
        return
    assert row.status == PENDING and row.attempt_count == 1, row
    assert row.error_message and row.next_attempt_at > rig.clock(), row  # backoff: not before a delay
    assert_no_token(rig, row.error_message)
    before = len(h.fake.requests)
    assert full_pass(rig.worker, rig.source)  # a whole worker pass after the failure, read afresh below
    assert rig.row(rid).status == PENDING and len(h.fake.requests) - before <= 1  # not hammered (at most a probe)
    rig.later(61)
    rig.wait_status(rid, SYNCED)
    # applied, or superseded when the failed attempt had in fact reached the server (a timeout
    # after the server saved it): the conflict check then finds the change already there.
    assert on_server(h, item, kind, position), (fault, kind, h.state(item), rig.row(rid))
    assert "auth_required" not in rig.kinds()


def test_retry_after_is_honoured_for_the_whole_server(rig):
    h = rig.h
    item = h.add_item("Retry After", "/srv/media/retry after.mkv")
    h.fake.fail_next(503, retry_after=120, body="busy")
    rid = rig.send(item, PROGRESS, 300_000)
    rig.wait(lambda: rig.row(rid).attempt_count == 1 and rig.row(rid).status == PENDING, what="503 handled")
    row = rig.row(rid)
    assert 119 <= row.next_attempt_at - rig.clock() <= 121, row
    other = h.add_item("Other", "/srv/media/other.mkv")
    rid2 = rig.send(other, PROGRESS, 200_000)
    before = len(h.fake.requests)
    assert full_pass(rig.worker, rig.source, force=True)  # "sync now" still honours the server's Retry-After
    assert len(h.fake.requests) == before and rig.row(rid2).status == PENDING
    rig.clock.advance(119)
    assert full_pass(rig.worker, rig.source)
    assert len(h.fake.requests) == before
    rig.later(2)
    rig.wait_status(rid, SYNCED)
    rig.wait_status(rid2, SYNCED)
    assert h.state(item).position_ms == 300_000 and h.state(other).position_ms == 200_000


def test_429_with_retry_after(rig):
    h = rig.h
    item = h.add_item("Too Many", "/srv/media/too many.mkv")
    h.fake.fail_next(429, retry_after=30)
    rid = rig.send(item, WATCHED)
    rig.wait(lambda: rig.row(rid).attempt_count == 1 and rig.row(rid).status == PENDING, what="429 handled")
    assert 29 <= rig.row(rid).next_attempt_at - rig.clock() <= 31
    rig.later(31)
    rig.wait_status(rid, SYNCED)
    assert on_server(h, item, WATCHED, None)


def test_connection_refused_goes_offline_without_counting_attempts(rig):
    h = rig.h
    item = h.add_item("Refused", "/srv/media/refused.mkv")
    h.fake.go_down()
    rid = rig.send(item, WATCHED)
    rig.wait(lambda: "offline" in rig.kinds(), what="offline event")
    rig.wait(lambda: rig.row(rid).status == PENDING)
    assert rig.row(rid).attempt_count == 0
    assert rig.worker.server_states()[rig.source] == "offline"
    for _ in range(3):  # probes while down don't count either
        rig.clock.advance(120)
        assert full_pass(rig.worker, rig.source)
    assert rig.row(rid).status == PENDING and rig.row(rid).attempt_count == 0
    h.fake.come_back()
    rig.later(120)
    rig.wait_status(rid, SYNCED)
    assert "online" in rig.kinds() and on_server(h, item, WATCHED, None)
    for e in rig.events:
        assert_no_token(rig, e.message)


@pytest.mark.parametrize("status", [401, 403])
def test_auth_refusal_pauses_the_server_until_new_settings(rig, status):
    h = rig.h
    item = h.add_item(f"Auth {status}", f"/srv/media/auth {status}.mkv")
    h.fake.fail_next(status, times=1)
    rid = rig.send(item, WATCHED)
    rig.wait(lambda: "auth_required" in rig.kinds(), what="auth_required event")
    rig.wait(lambda: rig.row(rid).status == PENDING)
    assert rig.row(rid).attempt_count == 0
    assert rig.worker.server_states()[rig.source] == "auth_required"
    msg = next(e.message for e in rig.events if e.kind == "auth_required")
    assert "sign in" in msg
    assert_no_token(rig, msg)
    before = len(h.fake.requests)
    rig.clock.advance(3600)
    assert full_pass(rig.worker, rig.source, force=True)
    assert len(h.fake.requests) == before, "a paused server was contacted"
    rig.worker.set_backend(rig.source, rig.backend())  # the viewer signed in again
    rig.wait_status(rid, SYNCED)
    assert on_server(h, item, WATCHED, None)
    assert rig.row(rid).attempt_count == 1  # the one real send


@pytest.mark.parametrize("status,words", [(404, "Item not found."), (400, "Bad value for ItemId")])
def test_not_found_or_bad_request_fails_keeps_the_message_and_is_retryable(rig, status, words):
    h = rig.h
    item = h.add_item(f"Gone {status}", f"/srv/media/gone {status}.mkv")
    h.fake.fail_next(status, body=words)
    rid = rig.send(item, WATCHED)
    rig.wait_status(rid, FAILED)
    row = rig.row(rid)
    assert str(status) in row.error_message or f"no item {item}" in row.error_message, row.error_message
    assert words in row.error_message or f"no item {item}" in row.error_message, row.error_message
    assert_no_token(rig, row.error_message)
    assert [e for e in rig.events if e.kind == "failed" and e.change is not None and e.change.id == rid]
    assert [r.id for r in rig.queue.get_failed_retryable()] == [rid]
    assert rig.worker.retry_failed() == 1
    rig.wait_status(rid, SYNCED)
    assert on_server(h, item, WATCHED, None)


def test_redirect_to_another_host_carries_no_token_and_loses_nothing(rig):
    h = rig.h
    item = h.add_item("Moved", "/srv/media/moved.mkv")
    with Elsewhere(host="127.0.0.2") as other:
        h.fake.redirect_next(other.url, status=307)
        rid = rig.send(item, WATCHED)
        rig.wait(lambda: rig.row(rid).status != "syncing" and rig.row(rid).updated_at and other.requests,
                 what="the redirected send")
        assert other.requests, "the redirect was not followed at all"
        for r in other.requests:
            blob = str(dict(r.headers)) + str(r.query) + r.body.decode("utf-8", "replace") + r.path
            assert h.token not in blob, f"the token went to {other.url}"
    # The other host answered 200; that must not count as saved on this server.
    row = rig.row(rid)
    assert not (row.status == SYNCED and not on_server(h, item, WATCHED, None)), \
        f"change closed as {row.resolution} though it never reached the server: {row}"
    assert row.status == PENDING and row.attempt_count == 1 and "another address" in row.error_message, row
    assert_no_token(rig, row.error_message)
    rig.later(120)
    rig.wait_status(rid, SYNCED)
    assert on_server(h, item, WATCHED, None)


def test_a_burst_of_mixed_faults_loses_nothing(rig):
    """Many changes while the server cycles through faults: all end on the server, once."""
    h = rig.h
    items = [h.add_item(f"Burst {i}", f"/srv/media/burst {i}.mkv") for i in range(6)]
    f = h.fake
    f.fail_next(500)
    f.reset_next()
    f.fail_next(503, retry_after=5)
    f.malformed_next()
    f.fail_next(429)
    want = {}
    for i, item in enumerate(items):
        kind = WATCHED if i % 2 else PROGRESS
        pos = None if kind == WATCHED else 100_000 + i * 1000
        want[rig.send(item, kind, pos)] = (item, kind, pos)
    for _ in range(60):
        if all(rig.row(r).status == SYNCED for r in want):
            break
        rig.clock.advance(61)
        assert full_pass(rig.worker, rig.source)
    assert all(rig.row(r).status == SYNCED for r in want), rig.queue.rows()
    for rid, (item, kind, pos) in want.items():
        assert on_server(h, item, kind, pos), (kind, h.state(item))
    assert rig.worker.server_states()[rig.source] == "online"
    for e in rig.events:
        assert h.token not in redact(e.message) and h.token not in e.message
