"""Shared helpers for the queue tests (no tests here): a settable clock and raw rows on the real file."""
import sqlite3

from playbacksync.changes import Change

TABLE = "playback_sync_queue"
T0 = 1_700_000_000.0


class Clock:
    def __init__(self, now=T0):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


def change(kind="progress_update", pos=None, item="item1", source="srv", user="u1", at=None):
    if kind in ("P", "progress"):
        kind = "progress_update"
    elif kind == "W":
        kind = "mark_watched"
    elif kind == "U":
        kind = "mark_unwatched"
    if kind == "progress_update" and pos is None:
        pos = 1000
    return Change(media_item_id=item, source_id=source, user_id=user, change_type=kind,
                  position_ms=pos, duration_ms=60_000 if pos is not None else None,
                  completed=kind == "mark_watched", created_at=at or 0.0)


def raw(path):
    con = sqlite3.connect(path, timeout=5)
    con.row_factory = sqlite3.Row
    return con


def insert_raw(path, *, kind, status="pending", item="item1", source="srv", user="u1", pos=None,
               owner=None, lease=None, updated_at=T0, next_at=0.0, resolution=None):
    con = raw(path)
    with con:
        cur = con.execute(
            f"INSERT INTO {TABLE} (media_item_id, source_id, user_id, change_type, position_ms, completed, "
            "created_at, attempt_count, status, next_attempt_at, updated_at, claim_owner, lease_expires_at, "
            "resolution, media_key) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?)",
            (item, source, user, kind, pos, kind == "mark_watched", updated_at, status, next_at,
             updated_at, owner, lease, resolution, f"item:{item}"))
        row_id = cur.lastrowid
    con.close()
    return row_id


def all_rows(path):
    con = raw(path)
    rows = [dict(r) for r in con.execute(f"SELECT * FROM {TABLE} ORDER BY id")]
    con.close()
    return rows
