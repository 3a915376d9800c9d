"""Property: whatever the order of changes, failures, retries and crashes, once the queue
is drained each server holds the state the viewer last left (real file, hypothesis).

A model server applies rows as the worker would: progress sets the resume point;
watched/unwatched set the played flag and clear the resume point. The expected
state is every change applied once, in the order the viewer made them.
"""
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from playbacksync.queue import SyncQueue

from .test_queue_support import Clock, change

ITEMS = ("a", "b")

enqueue = st.tuples(st.just("enqueue"), st.sampled_from(ITEMS), st.sampled_from("PPWU"),
                    st.integers(0, 100))
attempt = st.tuples(st.just("attempt"), st.integers(1, 3),
                    st.lists(st.sampled_from(["applied", "retry", "failed", "release", "crash",
                                              "applied_but_lost_answer"]), min_size=1, max_size=3))
retry = st.tuples(st.just("retry_failed"))
ops = st.lists(st.one_of(enqueue, enqueue, attempt, retry), max_size=30)


def apply(state, row):
    if row.change_type == "progress_update":
        return (state[0], row.position_ms)
    return (row.change_type == "mark_watched", None)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_drained_queue_leaves_each_server_in_the_viewers_last_state(steps):
    clock = Clock()
    expected = {i: (False, None) for i in ITEMS}
    server = {i: (False, None) for i in ITEMS}
    with tempfile.TemporaryDirectory() as folder:
        q = SyncQueue(folder, clock=clock, synchronous="NORMAL")
        try:
            for step in steps:
                clock.advance(1)
                if step[0] == "enqueue":
                    _, item, kind, pos = step
                    c = change(kind, pos * 1000 if kind == "P" else None, item=item, at=clock.now)
                    q.enqueue_change(c)
                    expected[item] = apply(expected[item], c)
                elif step[0] == "retry_failed":
                    q.retry_failed()
                else:
                    _, limit, outcomes = step
                    for n, row in enumerate(q.claim("srv", limit=limit)):
                        outcome = outcomes[n % len(outcomes)]
                        if outcome == "applied":
                            server[row.media_item_id] = apply(server[row.media_item_id], row)
                            q.mark_synced(row.id)
                        elif outcome == "applied_but_lost_answer":   # server did it; we retry anyway
                            server[row.media_item_id] = apply(server[row.media_item_id], row)
                            q.mark_retry(row.id, "timeout", clock.now)
                        elif outcome == "retry":
                            q.mark_retry(row.id, "HTTP 503", clock.now + 5)
                        elif outcome == "failed":
                            q.mark_failed(row.id, "HTTP 500")
                        elif outcome == "release":
                            q.release([row.id])
                        # "crash": left in syncing; the lease runs out below
                    if "crash" in outcomes:
                        clock.advance(q.lease_seconds + 1)
                        q.recover_stale()
                # Bounded by items: at most [watched|unwatched][progress] waiting per key.
                for item in ITEMS:
                    waiting = [r for r in q.rows(statuses=("pending",)) if r.media_item_id == item]
                    assert len(waiting) <= 2
            # The viewer presses "retry", and the servers come back: drain everything.
            q.retry_failed()
            clock.advance(q.lease_seconds + 100)
            q.recover_stale()
            for _ in range(50):
                rows = q.claim("srv", limit=100)
                if not rows:
                    break
                for row in rows:
                    server[row.media_item_id] = apply(server[row.media_item_id], row)
                    q.mark_synced(row.id)
            assert q.get_pending(due_only=False) == []
            assert q.counts().get("srv", {}).get("syncing", 0) == 0
        finally:
            q.close()
    assert server == expected
