"""Coalescing rules as a table: existing rows of one key + a new change → rows left open, in order.

Rows are written straight into the real file (any state, including ones only a
race produces), then the new change goes through SyncQueue.enqueue_change.
Notation: "P100" progress at 100 ms, "W" watched, "U" unwatched; a suffix
"/syncing" or "/failed" gives the status (default pending). The expected list is
every row of the key that is still open (pending, syncing, failed), by id; "=n"
means "the same row as existing row n" (updated in place); "new" is a new row.
"""
import pytest

from playbacksync.changes import SUPERSEDED, SYNCED
from playbacksync.queue import SyncQueue

from .test_queue_support import Clock, all_rows, change, insert_raw

KINDS = {"P": "progress_update", "W": "mark_watched", "U": "mark_unwatched"}

CASES = [
    # existing, new, expected open rows (spec, identity)
    ([], "P100", [("P100", "new")]),
    (["P100"], "P200", [("P200", "=0")]),                                   # in place: bounded by items
    (["P100/syncing"], "P200", [("P100/syncing", "=0"), ("P200", "new")]),  # in flight: applied after
    (["P100/syncing", "P200"], "P300", [("P100/syncing", "=0"), ("P300", "=1")]),
    (["W"], "P5", [("W", "=0"), ("P5", "new")]),                            # rewatch applied after watched
    (["W", "P5"], "P9", [("W", "=0"), ("P9", "=1")]),
    (["U", "P5"], "P9", [("U", "=0"), ("P9", "=1")]),
    (["P100"], "W", [("W", "new")]),                                        # watched replaces progress
    (["W", "P5"], "W", [("W", "=0")]),                                      # told once; rewatch progress gone
    (["W"], "U", [("U", "new")]),                                           # unwatched cancels watched
    (["U"], "W", [("W", "new")]),                                           # and the reverse
    (["W", "P5"], "U", [("U", "new")]),
    (["W/syncing"], "U", [("W/syncing", "=0"), ("U", "new")]),
    (["W/syncing"], "W", [("W/syncing", "=0"), ("W", "new")]),
    (["U/syncing", "W"], "U", [("U/syncing", "=0"), ("U", "new")]),
    (["W", "U/syncing"], "W", [("U/syncing", "=1"), ("W", "new")]),         # a pending row before one in flight is not reused
    (["P100/syncing"], "W", [("P100/syncing", "=0"), ("W", "new")]),
    (["P100/failed"], "P200", [("P200", "new")]),                           # a stale failed position is dropped
    (["W/failed"], "U", [("U", "new")]),                                    # a failed state the viewer reversed is dropped
    (["W/failed"], "P5", [("W/failed", "=0"), ("P5", "new")]),              # failed watched stays for retry
    (["P100/failed", "W"], "P5", [("W", "=1"), ("P5", "new")]),
]


def spec_of(row):
    letter = {v: k for k, v in KINDS.items()}[row["change_type"]]
    text = letter + (str(row["position_ms"]) if letter == "P" else "")
    return text if row["status"] == "pending" else f"{text}/{row['status']}"


def parse(spec):
    head, _, status = spec.partition("/")
    kind, pos = head[0], head[1:]
    return KINDS[kind], (int(pos) if pos else None), status or "pending"


@pytest.mark.parametrize("existing, new, expected", CASES,
                         ids=[f"{'+'.join(e) or 'empty'}<-{n}" for e, n, _ in CASES])
def test_coalescing_table(tmp_path, existing, new, expected):
    clock = Clock()
    q = SyncQueue(str(tmp_path), clock=clock)
    try:
        ids = []
        for spec in existing:
            kind, pos, status = parse(spec)
            owner = f"{q.host}:1:test" if status == "syncing" else None  # pid 1 is alive: not recovered
            ids.append(insert_raw(q.path, kind=kind, pos=pos, status=status, owner=owner,
                                  lease=clock.now + 600 if owner else None))
        # Rows of another user and another item must not be touched.
        bystanders = [insert_raw(q.path, kind="progress_update", pos=7, user="someone else"),
                      insert_raw(q.path, kind="mark_watched", item="item2")]
        kind, pos, _ = parse(new)
        returned = q.enqueue_change(change(kind, pos))

        rows = [r for r in all_rows(q.path) if r["id"] not in bystanders]
        open_rows = [r for r in rows if r["status"] in ("pending", "syncing", "failed")]
        assert [spec_of(r) for r in open_rows] == [s for s, _ in expected]
        for row, (_, ident) in zip(open_rows, expected):
            if ident == "new":
                assert row["id"] not in ids
            else:
                assert row["id"] == ids[int(ident[1:])]
        # The returned id is the row now carrying the new change (the last open row).
        assert returned == open_rows[-1]["id"]
        # Everything else of the key was closed as superseded, with the reason, never deleted.
        closed = [r for r in rows if r["status"] == SYNCED]
        assert {r["id"] for r in closed} == set(ids) - {r["id"] for r in open_rows}
        for r in closed:
            assert r["resolution"] == SUPERSEDED and "superseded by a later" in r["error_message"]
        assert all(r["status"] == "pending" for r in all_rows(q.path) if r["id"] in bystanders)
    finally:
        q.close()


def test_a_day_of_progress_stays_one_row(tmp_path):
    q = SyncQueue(str(tmp_path))
    try:
        for pos in range(0, 3_600_000, 10_000):
            q.enqueue_change(change("P", pos))
        rows = all_rows(q.path)
        assert len(rows) == 1 and rows[0]["position_ms"] == 3_590_000
    finally:
        q.close()


def test_watch_rewatch_unwatch_sequence_ends_in_viewers_last_state(tmp_path):
    q = SyncQueue(str(tmp_path))
    try:
        for pos in (10_000, 20_000):
            q.enqueue_change(change("P", pos))
        q.enqueue_change(change("W"))
        q.enqueue_change(change("P", 3_000))      # rewatching
        assert [(r.change_type, r.position_ms) for r in q.get_pending()] == [
            ("mark_watched", None), ("progress_update", 3_000)]
        q.enqueue_change(change("U"))
        assert [r.change_type for r in q.get_pending()] == ["mark_unwatched"]
    finally:
        q.close()
