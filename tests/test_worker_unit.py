"""Worker decisions without a server: retry schedule, batching/dedup, what waited, conflicts."""
from __future__ import annotations

import random

from dataclasses import replace

import pytest

from playbacksync.backends.base import ItemState
from playbacksync.changes import PROGRESS, SYNCING, UNWATCHED, WATCHED, QueuedChange
from playbacksync.worker import WorkerEvent
from playbacksync.worker.backoff import RETRY_AFTER_MAX, backoff_delay, retry_delay
from playbacksync.worker.plan import conflict, plan_batch, waited

T = 1_750_000_000.0


class _Fixed(random.Random):
    def __init__(self, value):
        super().__init__()
        self.value = value

    def random(self):
        return self.value


def row(id, kind=PROGRESS, item="a", created=T, attempts=0, pos=1000):
    return QueuedChange(media_item_id=item, source_id="s", user_id="u", change_type=kind,
                        position_ms=pos if kind == PROGRESS else None, created_at=created, id=id,
                        status=SYNCING, attempt_count=attempts)


def test_backoff_doubles_from_one_second_and_caps_at_sixty():
    no_jitter = _Fixed(0.0)
    assert [backoff_delay(n, rng=no_jitter) for n in range(1, 10)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert backoff_delay(10_000, rng=no_jitter) == 60  # no overflow


def test_backoff_jitter_only_shortens_and_varies():
    full = _Fixed(1.0 - 1e-12)
    assert backoff_delay(3, rng=full) == pytest.approx(4 * 0.8)
    assert backoff_delay(20, rng=full) == pytest.approx(60 * 0.8)
    rng = random.Random(7)
    seen = {round(backoff_delay(4, rng=rng), 6) for _ in range(50)}
    assert len(seen) > 40 and all(6.4 <= d <= 8 for d in seen)


def test_backoff_base_and_cap_are_settings():
    assert backoff_delay(3, base=0.5, cap=1.5, rng=_Fixed(0)) == 1.5
    assert backoff_delay(1, base=0.5, cap=1.5, rng=_Fixed(0)) == 0.5


def test_retry_after_wins_over_backoff_and_is_bounded():
    assert retry_delay(1, 30.0, rng=_Fixed(0)) == 30.0
    assert retry_delay(5, 0.0, rng=_Fixed(0)) == 0.0
    assert retry_delay(1, 10 ** 9, rng=_Fixed(0)) == RETRY_AFTER_MAX
    assert retry_delay(2, None, rng=_Fixed(0)) == 2.0


def test_batch_groups_by_item_in_row_order():
    b = plan_batch([row(5, item="b"), row(1, item="a"), row(3, WATCHED, item="b"), row(2, WATCHED, item="a")])
    assert list(b.jobs) == [("a", "u"), ("b", "u")]
    # a: progress(1) then watched(2): the watched resets the state, the earlier progress is pointless.
    assert [r.id for r in b.jobs[("a", "u")]] == [2]
    # b: watched(3) then progress(5) is a rewatch: both, in order.
    assert [r.id for r in b.jobs[("b", "u")]] == [3, 5]
    assert [(r.id, "watched" in why) for r, why in b.superseded] == [(1, True)]


def test_batch_keeps_only_latest_position_and_last_state_mark():
    rows = [row(1, pos=10), row(2, pos=20), row(3, WATCHED), row(4, UNWATCHED), row(6, pos=5), row(7, pos=6)]
    b = plan_batch(rows)
    assert [r.id for r in b.jobs[("a", "u")]] == [4, 7]
    assert sorted(r.id for r, _ in b.superseded) == [1, 2, 3, 6]
    assert all("#" in why for _, why in b.superseded)


def test_batch_separates_users_of_one_item():
    a = row(1)
    b = QueuedChange(**{**a.__dict__, "id": 2, "user_id": "v"})
    assert len(plan_batch([a, b]).jobs) == 2


def test_waited_means_retried_old_or_from_before_the_server_came_back():
    now = T + 10
    assert not waited(row(1, created=T), now, online_since=T - 5, conflict_age=60)
    assert waited(row(1, created=T, attempts=1), now, online_since=T - 5, conflict_age=60)
    assert waited(row(1, created=T - 61), T, online_since=None, conflict_age=60)
    assert waited(row(1, created=T), now, online_since=T + 1, conflict_age=60)
    assert waited(row(1, created=T), now, online_since=T, conflict_age=60)  # pending when it came back
    assert not waited(row(1, created=T), now, online_since=None, conflict_age=60)
    # Sent before, no answer, no attempt counted (its process died mid-send): it waited out its window.
    assert waited(replace(row(1, created=T), sent_at=T + 1), now, online_since=T - 5, conflict_age=60)


def test_conflict_server_newer_wins_older_loses():
    r = row(1, created=T)
    assert conflict(r, ItemState()) is None  # never played there
    assert conflict(r, ItemState(last_played_at=T - 30.5)) is None
    why = conflict(r, ItemState(last_played_at=T + 30.25))
    assert why and "after this change was made" in why
    # The change itself already landed (the server stamps the change's own time): not sent again.
    assert conflict(r, ItemState(last_played_at=T + 0.0000004)) is not None


def test_conflict_allows_for_whole_second_stamps():
    r = row(1, created=T + 0.6)
    assert conflict(r, ItemState(last_played_at=T)) is not None      # Plex truncates: maybe ours already
    assert conflict(r, ItemState(last_played_at=T - 1)) is None


def test_conflict_ignores_the_workers_own_writes():
    r = row(1, created=T)
    assert conflict(r, ItemState(last_played_at=T + 50), own_write_until=T + 50.2) is None
    assert conflict(r, ItemState(last_played_at=T + 50), own_write_until=T + 40) is not None


def test_worker_event_rejects_unknown_kinds():
    assert WorkerEvent("completed", "s", "ok").change is None
    with pytest.raises(ValueError):
        WorkerEvent("done", "s", "?")
