"""SyncQueue repository functions on a real SQLite file."""
import os
import subprocess
import sys
import threading

import pytest

from playbacksync.changes import FAILED, PENDING, SUPERSEDED, SYNCED, SYNCING
from playbacksync.queue import QueueError, SyncQueue

from .test_queue_support import T0, Clock, all_rows, change, insert_raw, raw


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def q(tmp_path, clock):
    queue = SyncQueue(str(tmp_path), clock=clock)
    yield queue
    queue.close()


def test_file_lives_in_data_dir_argument_then_env(tmp_path, monkeypatch):
    monkeypatch.setenv("PLAYBACK_SYNC_DATA_DIR", str(tmp_path / "env"))
    a = SyncQueue()
    b = SyncQueue(str(tmp_path / "arg"), filename="other.sqlite")
    try:
        assert a.path == str(tmp_path / "env" / "queue.sqlite") and os.path.isfile(a.path)
        assert b.path == str(tmp_path / "arg" / "other.sqlite") and os.path.isfile(b.path)
    finally:
        a.close()
        b.close()


def test_enqueue_is_durable_when_it_returns(q):
    row_id = q.enqueue_change(change("P", 4200, at=T0 - 5))
    # Another connection (as another process would) sees it committed at once.
    con = raw(q.path)
    row = con.execute("SELECT * FROM playback_sync_queue WHERE id = ?", (row_id,)).fetchone()
    con.close()
    assert row["status"] == PENDING and row["position_ms"] == 4200 and row["duration_ms"] == 60_000
    assert row["created_at"] == T0 - 5 and row["attempt_count"] == 0


def test_enqueue_uses_clock_when_change_has_no_time(q):
    row_id = q.enqueue_change(change("W"))
    assert q.get(row_id).created_at == T0 and q.get(row_id).completed is True


def test_durability_settings_are_wal_full_sync_and_busy_timeout(q, tmp_path):
    q.enqueue_change(change("P"))
    assert q.settings() == {"journal_mode": "wal", "synchronous": "FULL", "busy_timeout_ms": 5000}
    con = raw(q.path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"   # persistent in the file
    con.close()
    fast = SyncQueue(str(tmp_path / "n"), synchronous="normal", busy_timeout=0.5)
    try:
        assert fast.settings()["synchronous"] == "NORMAL" and fast.settings()["busy_timeout_ms"] == 500
    finally:
        fast.close()
    with pytest.raises(ValueError):
        SyncQueue(str(tmp_path / "x"), synchronous="OFF")


@pytest.mark.parametrize("bad, message", [
    (dict(item=""), "media_item_id"),
    (dict(source=""), "source_id"),
    (dict(pos=-1), "position_ms"),
    (dict(at=float("nan")), "created_at"),
])
def test_bad_change_is_refused_and_nothing_written(q, bad, message):
    with pytest.raises(ValueError, match=message):
        q.enqueue_change(change("P", **bad))
    assert all_rows(q.path) == []


def test_progress_without_position_is_refused(q):
    from playbacksync.changes import Change
    with pytest.raises(ValueError, match="position_ms"):
        q.enqueue_change(Change("i", "s", "u", "progress_update"))
    with pytest.raises(TypeError):
        q.enqueue_change({"media_item_id": "i"})


def test_get_pending_order_filters_and_due(q, clock):
    a = q.enqueue_change(change("P", item="a"))
    b = q.enqueue_change(change("P", item="b", source="other"))
    c = q.enqueue_change(change("W", item="c"))
    assert [r.id for r in q.get_pending()] == [a, b, c]
    assert [r.id for r in q.get_pending("srv")] == [a, c]
    assert [r.id for r in q.get_pending(limit=2)] == [a, b]
    [claimed] = q.claim("srv", limit=1)
    assert claimed.id == a
    q.mark_retry(a, "server down", T0 + 30)
    assert [r.id for r in q.get_pending("srv")] == [c]            # a not due yet
    assert [r.id for r in q.get_pending("srv", due_only=False)] == [a, c]
    clock.advance(30)
    assert [r.id for r in q.get_pending("srv")] == [a, c]


def test_claim_is_ordered_limited_per_server_and_records_owner_and_lease(q, clock):
    ids = [q.enqueue_change(change("P", item=f"i{n}")) for n in range(5)]
    q.enqueue_change(change("P", item="x", source="other"))
    got = q.claim("srv", limit=3)
    assert [r.id for r in got] == ids[:3] and all(r.status == SYNCING for r in got)
    assert all(r.last_attempt_at == T0 for r in got)
    rows = {r["id"]: r for r in all_rows(q.path)}
    assert rows[ids[0]]["claim_owner"] == q.owner
    assert q.owner.split(":")[1] == str(os.getpid())
    assert rows[ids[0]]["lease_expires_at"] == T0 + q.lease_seconds
    assert [r.id for r in q.claim("srv")] == ids[3:]
    assert q.claim("srv") == []


def test_claim_takes_one_row_per_item_in_order_and_skips_items_in_flight(q):
    w = q.enqueue_change(change("W"))
    p = q.enqueue_change(change("P", 5000))          # rewatch after watched: two rows
    other = q.enqueue_change(change("P", item="item2"))
    assert [r.id for r in q.claim("srv")] == [w, other]
    assert q.claim("srv") == []                       # p waits: its item has w in flight
    q.mark_synced(w)
    assert [r.id for r in q.claim("srv")] == [p]


def test_claim_waits_for_an_items_oldest_row_to_be_due(q, clock):
    w = q.enqueue_change(change("W"))
    q.claim("srv")
    p = q.enqueue_change(change("P", 100))
    q.mark_retry(w, "timeout", T0 + 60)
    assert q.claim("srv") == []                       # p must not overtake w
    clock.advance(60)
    assert [r.id for r in q.claim("srv")] == [w]


def test_mark_syncing_claims_only_pending_ids(q):
    a = q.enqueue_change(change("P", item="a"))
    b = q.enqueue_change(change("P", item="b"))
    q.mark_syncing([a])
    got = q.mark_syncing([a, b, 999])
    assert [r.id for r in got] == [b]
    assert q.get(a).status == SYNCING and q.mark_syncing([]) == []


def test_mark_synced_counts_the_attempt_and_clears_claim(q, clock):
    a = q.enqueue_change(change("P"))
    q.claim("srv")
    clock.advance(2)
    assert q.mark_synced(a) is True
    row = q.get(a)
    assert (row.status, row.resolution, row.attempt_count, row.updated_at) == (SYNCED, "applied", 1, T0 + 2)
    raw_row = all_rows(q.path)[0]
    assert raw_row["claim_owner"] is None and raw_row["lease_expires_at"] is None
    assert q.mark_synced(a) is False                 # already closed


def test_mark_synced_superseded_with_note_from_pending(q):
    a = q.enqueue_change(change("P"))
    assert q.mark_synced(a, resolution=SUPERSEDED, note="server has a newer position") is True
    row = q.get(a)
    assert (row.status, row.resolution, row.error_message, row.attempt_count) == (
        SYNCED, SUPERSEDED, "server has a newer position", 0)


def test_outcomes_refuse_a_row_claimed_by_another_queue(q, tmp_path, clock):
    a = q.enqueue_change(change("P"))
    other = SyncQueue(str(tmp_path), clock=clock)
    try:
        [row] = other.claim("srv")
        assert q.mark_synced(a) is False
        assert q.mark_retry(a, "x", T0) is False
        assert q.mark_failed(a, "x") is False
        assert q.release([a]) == 0
        assert q.get(a).status == SYNCING
        assert other.mark_synced(a) is True
    finally:
        other.close()


def test_mark_retry_back_to_pending_with_backoff_and_count(q, clock):
    a = q.enqueue_change(change("P"))
    q.claim("srv")
    assert q.mark_retry(a, "HTTP 503", T0 + 10) is True
    row = q.get(a)
    assert (row.status, row.error_message, row.next_attempt_at, row.attempt_count) == (
        PENDING, "HTTP 503", T0 + 10, 1)
    clock.advance(10)
    q.claim("srv")
    q.mark_retry(a, "offline", T0 + 20, count_attempt=False)
    assert q.get(a).attempt_count == 1


def test_mark_retry_of_a_row_overtaken_by_a_newer_position_closes_it(q):
    old = q.enqueue_change(change("P", 1000))
    q.claim("srv")
    new = q.enqueue_change(change("P", 2000))       # in flight: a new row after it
    assert new != old
    q.mark_retry(old, "timeout", T0)
    assert q.get(old).status == SYNCED and q.get(old).resolution == SUPERSEDED
    assert [r.id for r in q.get_pending()] == [new]


def test_mark_failed_keeps_row_visible_and_retryable(q):
    a = q.enqueue_change(change("P", item="a"))
    b = q.enqueue_change(change("P", item="b", source="other"))
    q.claim("srv")
    q.claim("other")
    assert q.mark_failed(a, "HTTP 404: item gone") is True
    q.mark_failed(b, "HTTP 400")
    row = q.get(a)
    assert (row.status, row.error_message, row.attempt_count) == (FAILED, "HTTP 404: item gone", 1)
    assert [r.id for r in q.get_failed_retryable()] == [a, b]
    assert [r.id for r in q.get_failed_retryable("srv")] == [a]
    assert q.get_pending() == []


def test_release_returns_rows_without_counting(q):
    a = q.enqueue_change(change("P", item="a"))
    b = q.enqueue_change(change("P", item="b"))
    q.claim("srv")
    assert q.release([a, b]) == 2
    assert all(r.status == PENDING and r.attempt_count == 0 for r in q.get_pending())
    assert q.release([]) == 0


def test_retry_failed_resets_attempts_per_server(q, clock):
    a = q.enqueue_change(change("P", item="a"))
    b = q.enqueue_change(change("P", item="b", source="other"))
    for source, row_id in (("srv", a), ("other", b)):
        q.claim(source)
        q.mark_retry(row_id, "e", T0)
        q.claim(source)
        q.mark_failed(row_id, "gave up")
    assert q.get(a).attempt_count == 2
    assert q.retry_failed("srv") == 1
    row = q.get(a)
    assert (row.status, row.attempt_count, row.next_attempt_at) == (PENDING, 0, 0)
    assert q.get(b).status == FAILED
    assert q.retry_failed() == 1 and q.get_failed_retryable() == []


def test_retry_failed_does_not_resend_a_state_the_viewer_changed_since(q):
    w = q.enqueue_change(change("W"))
    q.claim("srv")
    q.mark_failed(w, "HTTP 500")
    u = q.enqueue_change(change("U"))                # supersedes the failed watched at once
    assert q.get(w).resolution == SUPERSEDED
    assert q.retry_failed() == 0
    assert [r.id for r in q.get_pending()] == [u]


def test_clear_failed(q):
    a = q.enqueue_change(change("P"))
    q.mark_failed(a, "x")
    assert q.clear_failed("other") == 0
    assert q.clear_failed() == 1 and q.get(a) is None


def test_prune_deletes_only_old_synced_rows(q, clock):
    old = q.enqueue_change(change("P", item="old"))
    q.claim("srv")
    q.mark_synced(old)
    failed = q.enqueue_change(change("P", item="failed"))
    q.mark_failed(failed, "x")
    clock.advance(6 * 86400)
    recent = q.enqueue_change(change("P", item="recent"))
    q.claim("srv")
    q.mark_synced(recent)
    pending = q.enqueue_change(change("P", item="pending"))
    clock.advance(1 * 86400 + 1)
    assert q.prune() == 1
    assert {r["id"] for r in all_rows(q.path)} == {failed, recent, pending}
    assert q.prune(now=T0 + 100 * 86400) == 1        # recent goes too; failed/pending stay
    assert {r["id"] for r in all_rows(q.path)} == {failed, pending}


def test_prune_runs_at_open(tmp_path, clock):
    q = SyncQueue(str(tmp_path), clock=clock, retention_days=1)
    a = q.enqueue_change(change("P"))
    q.mark_synced(a, resolution=SUPERSEDED)
    q.close()
    clock.advance(2 * 86400)
    q = SyncQueue(str(tmp_path), clock=clock, retention_days=1)
    assert q.get(a) is None
    q.close()


def test_counts(q):
    a = q.enqueue_change(change("P", item="a"))
    q.enqueue_change(change("P", item="b"))
    q.enqueue_change(change("W", item="c", source="other"))
    q.claim("srv", limit=1)
    q.mark_failed(a, "x")
    assert q.counts() == {
        "srv": {"pending": 1, "syncing": 0, "synced": 0, "failed": 1},
        "other": {"pending": 1, "syncing": 0, "synced": 0, "failed": 0},
    }


# -- crash recovery decisions ------------------------------------------------
def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_recover_stale_rules(q, clock):
    host = q.host
    live = os.getppid()
    dead = _dead_pid()
    lease_ok = T0 + 60
    rows = {
        "dead_owner": insert_raw(q.path, kind="progress_update", pos=1, item="a", status=SYNCING,
                                 owner=f"{host}:{dead}:abcd", lease=lease_ok),
        "expired": insert_raw(q.path, kind="progress_update", pos=1, item="b", status=SYNCING,
                              owner=f"{host}:{live}:abcd", lease=T0 - 1),
        "live": insert_raw(q.path, kind="progress_update", pos=1, item="c", status=SYNCING,
                           owner=f"{host}:{live}:abcd", lease=lease_ok),
        "other_host": insert_raw(q.path, kind="progress_update", pos=1, item="d", status=SYNCING,
                                 owner=f"elsewhere:{dead}:abcd", lease=lease_ok),
        "no_owner": insert_raw(q.path, kind="progress_update", pos=1, item="e", status=SYNCING),
    }
    assert q.recover_stale() == 3
    status = {name: q.get(i).status for name, i in rows.items()}
    assert status == {"dead_owner": PENDING, "expired": PENDING, "live": SYNCING,
                      "other_host": SYNCING, "no_owner": PENDING}
    clock.advance(61)                                 # now every lease has run out
    assert q.recover_stale() == 2
    assert all(q.get(i).status == PENDING for i in rows.values())
    assert all(q.get(i).attempt_count == 0 for i in rows.values())


def test_recovered_row_overtaken_by_a_later_state_is_closed_not_resent(q):
    host = q.host
    p = insert_raw(q.path, kind="progress_update", pos=1, status=SYNCING,
                   owner=f"{host}:{_dead_pid()}:ab", lease=T0 + 60)
    w = q.enqueue_change(change("W"))
    assert q.recover_stale() == 1
    assert q.get(p).resolution == SUPERSEDED
    assert [r.id for r in q.get_pending()] == [w]


def test_recovery_runs_at_open(tmp_path, clock):
    q = SyncQueue(str(tmp_path), clock=clock)
    a = insert_raw(q.path, kind="mark_watched", status=SYNCING, owner=f"{q.host}:{_dead_pid()}:ab",
                   lease=T0 + 60)
    q.close()
    q = SyncQueue(str(tmp_path), clock=clock)
    assert q.get(a).status == PENDING
    q.close()


def test_extend_lease(q, clock):
    a = q.enqueue_change(change("P"))
    q.claim("srv")
    clock.advance(100)
    assert q.extend_lease([a]) == 1
    clock.advance(100)                               # 200 s after the claim, 100 after renewal
    assert q.recover_stale() == 0
    clock.advance(21)
    assert q.recover_stale() == 1


# -- threads -------------------------------------------------------------------
def test_threads_claiming_together_never_share_a_row(q):
    ids = [q.enqueue_change(change("P", item=f"i{n}")) for n in range(150)]
    got, errors = [], []
    lock = threading.Lock()

    def work():
        try:
            while True:
                rows = q.claim("srv", limit=3)
                if not rows:
                    return
                with lock:
                    got.extend(r.id for r in rows)
                for r in rows:
                    q.mark_synced(r.id)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert sorted(got) == ids and len(got) == len(set(got))


def test_threads_enqueueing_the_same_item_keep_one_progress_row(q):
    def work(n):
        for k in range(25):
            q.enqueue_change(change("P", pos=n * 1000 + k))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(q.get_pending()) == 1 and len(all_rows(q.path)) == 1


def test_closed_queue_raises_queue_error(q):
    q.close()
    with pytest.raises(QueueError, match="closed"):
        q.enqueue_change(change("P"))


def test_ids_are_never_reused(q):
    a = q.enqueue_change(change("P"))
    q.mark_failed(a, "x")
    q.clear_failed()
    assert q.enqueue_change(change("P")) > a


def test_retried_watched_mark_resends_a_rewatch_position_already_sent(q):
    w = q.enqueue_change(change("W"))
    q.claim("srv")
    q.mark_failed(w, "HTTP 500")
    p = q.enqueue_change(change("P", 30_000))         # rewatching; goes out while w is failed
    [row] = q.claim("srv")
    assert row.id == p
    q.mark_synced(p)
    assert q.retry_failed() == 1
    pending = q.get_pending()
    # the watched mark resets the resume point on the server: the position follows it again
    assert [(r.change_type, r.position_ms) for r in pending] == [
        ("mark_watched", None), ("progress_update", 30_000)]
    assert pending[0].id == w and pending[1].id > p


def test_folder_names_that_look_like_url_syntax_are_used_as_is(tmp_path):
    folder = tmp_path / "we?ird #dir%20"
    q = SyncQueue(str(folder))
    try:
        row_id = q.enqueue_change(change("W"))
        assert os.listdir(folder) and os.path.isfile(q.path)
        assert [r["id"] for r in all_rows(q.path)] == [row_id]
    finally:
        q.close()
    assert not [p for p in os.listdir(tmp_path) if p != folder.name]


def test_claim_not_due_only_keeps_the_per_item_rule(tmp_path):
    """'Sync now' takes rows waiting out a backoff, but still one per item and none behind one in flight."""
    from playbacksync.changes import Change
    from playbacksync.queue import SyncQueue

    now = [1000.0]
    q = SyncQueue(str(tmp_path), clock=lambda: now[0])
    try:
        watched = q.enqueue_change(Change("a", "s", "u", "mark_watched", completed=True, created_at=1.0))
        q.enqueue_change(Change("a", "s", "u", "progress_update", position_ms=5000, created_at=2.0))
        other = q.enqueue_change(Change("b", "s", "u", "progress_update", position_ms=7000, created_at=3.0))
        (row,) = q.claim("s", limit=1)
        assert row.id == watched
        q.mark_retry(watched, "busy", next_attempt_at=now[0] + 60)  # waiting out a backoff
        assert [r.id for r in q.claim("s")] == [other]  # a's watched not due, and a's progress waits behind it
        taken = q.claim("s", due_only=False)
        assert [r.id for r in taken] == [watched]  # due or not, a's progress still waits for its watched
    finally:
        q.close()


def _claim_steps(tmp_path, name, rows):
    """SQLite virtual-machine steps (in thousands) that one claim of 20 takes on a backlog of ``rows``."""
    queue = SyncQueue(str(tmp_path / name))
    try:
        for n in range(rows):
            queue.enqueue_change(change("P", item=f"item{n}", at=T0))
        steps = [0]

        def count():
            steps[0] += 1
            return 0

        with queue._db.session("count steps") as con:  # the pool hands this connection back next
            con.set_progress_handler(count, 1000)
        taken = queue.claim("srv", limit=20)
        assert len(taken) == 20
        return steps[0]
    finally:
        queue.close()


def test_a_claim_costs_in_proportion_to_the_backlog_not_its_square(tmp_path):
    # A claim checks each candidate against the rows ahead of it with the same key. That
    # check went through the server's rows one by one (a 5,000-row backlog: 5 s a claim,
    # a 10,000-change drain took 520 s); through the key indexes, 4× the backlog costs ~4×.
    small, large = _claim_steps(tmp_path, "small", 500), _claim_steps(tmp_path, "large", 2000)
    assert large <= 8 * max(small, 1), (small, large)
