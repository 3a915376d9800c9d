"""Carrying what can still be read out of a damaged queue file into the fresh one.

The damaged files stay where they were moved, untouched: rows are read from a
copy (so SQLite may replay the copy's -wal without writing to the original).
Rows come out in id order until a damaged page stops the scan, then in reverse
order from the other end, then one by one across the gap between. Each row is
checked: a change whose type or server cannot be read is lost (counted, and
its id logged); one whose status cannot be read is kept as *failed* with a
note, so the viewer decides (it may or may not have been sent: sending it
again unasked could apply it twice). Rows that were in flight go back to
pending. The :class:`DamageReport` says how many were saved and how many
could not be, for the log, the viewer's message and ``status``.
"""
from __future__ import annotations

import logging
import os
import sqlite3
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Tuple

from ..changes import CHANGE_TYPES, FAILED, PENDING, STATUSES, SYNCING
from ..sqlite_damage import pad_to_length

log = logging.getLogger(__name__)

TABLE = "playback_sync_queue"
REPORT_TAG = ".damage-"  # queue.sqlite.corrupt-<time> is reported in queue.sqlite.damage-<time>.json
_MAX_PROBES = 100_000  # ids probed one by one across a damaged stretch


@dataclass
class DamageReport:
    """What happened to a damaged queue file and its rows."""

    path: str  # the queue file
    moved_to: str  # where the damaged file (and its -wal/-shm) went
    reason: str  # what was wrong, as SQLite or our checks saw it
    saved: int = 0  # rows carried into the new queue
    saved_as_failed: int = 0  # of those, rows whose state was unreadable: kept as failed
    lost: int = 0  # rows (or -wal commits) that could not be read
    at: float = 0.0
    unreadable_file: bool = False  # nothing could be read, so how many were lost is unknown
    maybe_more: bool = False  # the -wal was cut: more than ``lost`` may be gone, uncounted

    def message(self) -> str:
        text = (f"the queue file {self.path} was damaged ({self.reason}); moved it to {self.moved_to} "
                f"and started a new queue: {self.saved} change(s) saved, ")
        if self.unreadable_file:
            text += "the file could not be read at all, so any change in it is lost"
        else:
            text += f"{self.lost} could not be read"
            if self.maybe_more:
                text += " (maybe more: the end of the file is gone, and what was there cannot be counted)"
        if self.saved_as_failed:
            text += (f"; {self.saved_as_failed} saved change(s) had a damaged state and are marked failed "
                     "(check them with `playback-sync status`, send them with `playback-sync retry`)")
        return text

    def write(self) -> None:
        """Beside the moved file, for ``status`` (best effort: the disk may be the problem)."""
        import json  # (json, shutil, tempfile: only once a file is damaged, not at every start)

        folder, name = os.path.split(self.moved_to)
        path = os.path.join(folder, name.replace(".corrupt-", REPORT_TAG, 1) + ".json")
        try:
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(asdict(self), fh)
        except OSError as exc:
            log.warning("cannot write the damage report %s: %s", path, exc)


def reports(folder: str, filename: str = "queue.sqlite") -> List[DamageReport]:
    """The damage reports of moved-aside queue files still in ``folder``, oldest first."""
    import json

    found = []
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    for name in names:
        if not (name.startswith(filename + REPORT_TAG) and name.endswith(".json")):
            continue
        try:
            with open(os.path.join(folder, name), encoding="utf-8") as fh:
                found.append(DamageReport(**json.load(fh)))
        except (OSError, ValueError, TypeError) as exc:
            log.warning("unreadable damage report %s: %s", name, exc)
    return [r for r in found if os.path.exists(r.moved_to)]


def _connect_copy(moved_to: str, scratch: str, schema: Dict[str, str]) -> sqlite3.Connection:
    """A connection to a copy of the damaged file (with its -wal), or read-only to it as is."""
    import shutil

    copy = os.path.join(scratch, "queue.sqlite")
    try:
        shutil.copyfile(moved_to, copy)
        pad_to_length(copy)
        if os.path.exists(moved_to + "-wal"):
            shutil.copyfile(moved_to + "-wal", copy + "-wal")
        _mend_schema(copy, schema)
        return sqlite3.connect(copy, isolation_level=None)
    except OSError as exc:  # no room for a copy: read the original, without its -wal
        log.warning("cannot copy %s to salvage it (%s); reading it in place", moved_to, exc)
        from urllib.parse import quote

        return sqlite3.connect(f"file:{quote(moved_to)}?mode=ro&immutable=1", uri=True, isolation_level=None)


def read_rows(moved_to: str, schema: Optional[Dict[str, str]] = None) -> Tuple[List[dict], Optional[int], bool]:
    """Of a damaged file: (rows that could be read, by id; how many ids could not be read, None
    if the file could not be read at all; whether more may be gone that cannot be counted).

    ``schema``: name -> CREATE statement of the fresh queue (same revision), to mend a copy
    whose own schema text was damaged."""
    import shutil
    import tempfile

    scratch = tempfile.mkdtemp(prefix=".salvage-", dir=os.path.dirname(moved_to) or ".")
    rows: Dict[int, dict] = {}
    unreadable: Optional[int] = 0
    maybe_more = False
    try:
        con = _connect_copy(moved_to, scratch, schema or {})
        con.row_factory = sqlite3.Row
        con.text_factory = _text_or_bytes  # a damaged text comes out as bytes, and is judged
        try:
            stopped = _scan(con, "ORDER BY id", rows) is None
            if stopped:
                from_end = _scan(con, "ORDER BY id DESC", rows)
                high, exact = _highest_id(con)
                unreadable = _probe_gap(con, rows, high)
                # The end of the table unreadable and no counter of ids: what was there is unknown.
                maybe_more = not from_end and not exact
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:  # no table, or its schema unreadable
            log.error("no change could be read from the damaged queue file %s: %s", moved_to, exc)
            unreadable = _highest_id(con)[0] or None
        finally:
            con.close()
    except (sqlite3.Error, UnicodeDecodeError) as exc:
        log.error("the damaged queue file %s cannot be read at all: %s", moved_to, exc)
        unreadable = None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if maybe_more and not rows and not unreadable:
        unreadable = None
    return [rows[i] for i in sorted(rows)], unreadable, maybe_more


def _mend_schema(copy: str, schema: Dict[str, str]) -> None:
    """If the copy's schema text no longer parses (a flipped byte in a CREATE statement), put
    back the fresh queue's statements for the same names; the data pages stay as they were."""
    con = sqlite3.connect(copy, isolation_level=None)
    try:
        try:
            con.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            con.execute(f"SELECT * FROM {TABLE} LIMIT 0").fetchall()
            return
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            if not schema or "schema" not in str(exc) and "no such column" not in str(exc):
                return
        try:
            con.execute("PRAGMA writable_schema = ON")
            for name, sql in schema.items():
                con.execute("UPDATE sqlite_master SET sql = ? WHERE name = ? AND sql IS NOT NULL", (sql, name))
            con.execute("PRAGMA writable_schema = OFF")
            log.warning("the damaged queue file's schema was mended from the new queue's to read its rows")
        except (sqlite3.Error, UnicodeDecodeError) as exc:
            log.warning("the damaged queue file's schema cannot be mended: %s", exc)
    finally:
        con.close()


def _scan(con, order: str, rows: Dict[int, dict]) -> Optional[int]:
    """Read rows in ``order`` into ``rows``; how many, or None if a damaged page stopped it."""
    read = 0
    try:
        for r in con.execute(f"SELECT * FROM {TABLE} {order}"):
            if r["id"] in rows:
                return read  # met the other scan
            rows[r["id"]] = dict(r)
            read += 1
    except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
        if not rows and order == "ORDER BY id":
            con.execute(f"SELECT * FROM {TABLE} LIMIT 0")  # the table itself unreadable: raise
        log.warning("reading the damaged queue stopped (%s): %s", order, exc)
        return None if order == "ORDER BY id" else read
    return read


def _highest_id(con) -> Tuple[int, bool]:
    """(the highest id the file ever gave a row, whether that is AUTOINCREMENT's own counter)
    from whichever copy is still readable: the counter, or the row ids each index keeps."""
    best, exact = 0, False
    try:
        row = con.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (TABLE,)).fetchone()
        if row:
            best, exact = int(row[0]), True
    except (sqlite3.Error, TypeError, ValueError):  # (UnicodeDecodeError is a ValueError)
        pass
    try:
        indexes = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?", (TABLE,))]
    except sqlite3.Error:
        indexes = []
    for name in indexes:
        try:
            row = con.execute(f'SELECT MAX(id) FROM {TABLE} INDEXED BY "{name}"').fetchone()
            best = max(best, int(row[0] or 0))
        except (sqlite3.Error, TypeError, ValueError):
            continue
    return best, exact


def _probe_gap(con, rows: Dict[int, dict], high: int) -> int:
    """Read, one by one, the ids up to ``high`` the scans did not reach; how many failed."""
    top = max(high, max(rows, default=0))
    failed = 0
    for row_id in range(max(1, top - _MAX_PROBES + 1), top + 1):
        if row_id in rows:
            continue
        try:
            r = con.execute(f"SELECT * FROM {TABLE} WHERE id = ?", (row_id,)).fetchone()
        except (sqlite3.DatabaseError, UnicodeDecodeError):
            failed += 1
            continue
        if r is not None:
            rows[row_id] = dict(r)
    return failed


def _text_or_bytes(raw: bytes):
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def check_row(row: dict) -> Optional[str]:
    """Why a row read from a damaged file cannot be used as a change, or None."""
    for name in ("media_item_id", "source_id", "user_id"):
        if isinstance(row.get(name), bytes):
            return f"its {name} is damaged"
    if row.get("change_type") not in CHANGE_TYPES:
        return f"its type is damaged ({row.get('change_type')!r})"
    if not isinstance(row.get("source_id"), str) or not row["source_id"]:
        return "its server is damaged"
    for name in ("position_ms", "duration_ms"):
        value = row.get(name)
        if value is not None and not isinstance(value, int):
            return f"its {name} is damaged"
    return None


def repair_row(row: dict, now: float) -> Tuple[dict, bool]:
    """The row as the new queue stores it; True if its state was unreadable (kept as failed)."""
    row = {k: str(v, "utf-8", "replace") if isinstance(v, bytes) else v for k, v in row.items()}
    damaged_state = row.get("status") not in STATUSES
    if damaged_state:
        row["error_message"] = (f"its state was damaged in the queue file ({row.get('status')!r}); "
                                "it may or may not have been sent: retry it to send it")
        row["status"] = FAILED
        row["resolution"] = None
    elif row["status"] == SYNCING:  # its sender used the old file: send it again
        row["status"] = PENDING
    if row["status"] == PENDING:
        row["next_attempt_at"] = 0
    for name in ("claim_owner", "lease_expires_at"):
        if name in row:
            row[name] = None
    if not row.get("media_key") and row.get("media_item_id"):  # a file from before revision 0003
        row["media_key"] = f"item:{row['media_item_id']}"
    row["updated_at"] = now
    return row, damaged_state
