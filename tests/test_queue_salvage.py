"""Damage from outside is never silent: real queue files cut, scribbled, with a damaged or cut
-wal, or holding a value no queue writes. The damaged files are moved aside together and kept
as they were, every row that can still be read goes into the fresh queue, and the report says
how many were saved and how many could not be.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from playbacksync.changes import FAILED, PENDING
from playbacksync.queue import QueueError, SyncQueue, opening

from .test_queue_support import change
from .faults.cli import PLUGIN, environment, playback_sync

TABLE = "playback_sync_queue"


def make_queue(folder, n, kind="W"):
    q = SyncQueue(str(folder))
    ids = [q.enqueue_change(change(kind, item=f"item-{i:05d}-" + "x" * 40, pos=i if kind == "P" else None))
           for i in range(n)]
    q.close()
    return os.path.join(str(folder), "queue.sqlite"), ids


def root_page(path, name):
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        page_size = con.execute("PRAGMA page_size").fetchone()[0]
        return con.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (name,)).fetchone()[0], page_size
    finally:
        con.close()


def edit(path, fn):
    data = bytearray(open(path, "rb").read())
    data = fn(data)
    with open(path, "wb") as fh:
        fh.write(bytes(data))
    return bytes(data)


def flip_status_in(path, name):
    """Flip one bit of the first 'pending' in the root page of table or index ``name``:
    'pending' becomes 'pendIng' there."""
    page, size = root_page(path, name)

    def flip(data):
        start = (page - 1) * size
        at = data.index(b"pending", start, start + size)
        data[at + 4] ^= 0x20
        return data

    return edit(path, flip)


def half_cut_queue(folder):
    """A folder whose queue of 400 progress rows lost the second half of its file."""
    path, _ = make_queue(folder, 400, kind="P")
    edit(path, lambda d: d[: len(d) // 2])
    return folder


def moved_files(folder):
    return sorted(p for p in glob.glob(os.path.join(str(folder), "queue.sqlite.corrupt-*")))


def item_of(row):
    return int(row.media_item_id.split("-")[1])


def test_file_cut_by_one_byte_is_detected_and_every_row_is_saved_and_sent(tmp_path):
    path, ids = make_queue(tmp_path, 3)
    cut = edit(path, lambda d: d[:-1])          # the last page is the claim index: its last entry reads "pendin"
    q = SyncQueue(str(tmp_path))
    try:
        assert [r.id for r in q.claim("srv")] == ids       # every change is sent
        assert set(q.counts()["srv"]) == {"pending", "syncing", "synced", "failed"}
        report = q.damage
        assert report and "ends inside a page" in report.reason
        assert (report.saved, report.lost, report.saved_as_failed) == (3, 0, 0)
    finally:
        q.close()
    [kept] = [p for p in moved_files(tmp_path) if p.endswith("Z")]
    assert open(kept, "rb").read() == cut                  # kept as it was


def test_flipped_bytes_in_a_row_keep_it_as_failed_and_say_so(tmp_path):
    path, ids = make_queue(tmp_path, 5)
    flip_status_in(path, TABLE)                          # 'pending' -> 'pendIng' in one row
    q = SyncQueue(str(tmp_path))
    try:
        rows = q.rows()
        assert [r.id for r in rows] == ids
        [failed] = [r for r in rows if r.status == FAILED]
        assert "damaged" in failed.error_message and "retry" in failed.error_message
        assert all(r.status == PENDING for r in rows if r is not failed)
        assert q.retry_failed() == 1 and len(q.claim("srv")) == 5   # the viewer can still send it
        report = q.damage
        assert report and (report.saved, report.lost, report.saved_as_failed) == (5, 0, 1)
        assert "1 saved change(s) had a damaged state" in report.message()
    finally:
        q.close()


def test_scribbled_page_in_the_middle_loses_only_its_rows_and_counts_them(tmp_path):
    path, ids = make_queue(tmp_path, 400, kind="P")
    page, size = root_page(path, TABLE)
    con = sqlite3.connect(path)
    pages = con.execute("PRAGMA page_count").fetchone()[0]
    con.close()

    def scribble(data):
        # a leaf page of the table somewhere in the middle: find one whose rows are ours
        for n in range(pages // 2, pages):
            start = n * size
            if data[start] == 0x0D and b"item-" in data[start:start + size]:   # a table leaf page
                data[start:start + 12] = b"\xff" * 12
                return data
        raise AssertionError("no table leaf page found")

    edit(path, scribble)
    q = SyncQueue(str(tmp_path))
    try:
        rows = q.rows()
        assert 300 < len(rows) < 400
        report = q.damage
        assert report and report.saved == len(rows) and report.saved + report.lost == 400
        for r in rows:                                   # what was saved is what was written
            assert r.position_ms == item_of(r) == r.id - 1 and r.status == PENDING
        assert f"{report.saved} change(s) saved, {report.lost} could not be read" in report.message()
    finally:
        q.close()


def copy_open_queue(tmp_path, n):
    """A queue folder whose last ``n`` commits exist only in its -wal (copied while it was open)."""
    src = tmp_path / "src"
    q = SyncQueue(str(src))
    ids = [q.enqueue_change(change("W", item=f"item-{i:05d}-" + "x" * 40)) for i in range(n)]
    dst = tmp_path / "q"
    dst.mkdir()
    for suffix in ("", "-wal"):
        shutil.copyfile(src / ("queue.sqlite" + suffix), dst / ("queue.sqlite" + suffix))
    q.close()
    con = sqlite3.connect(f"file:{dst / 'queue.sqlite'}?mode=ro&immutable=1", uri=True)
    assert con.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0] < n   # the rows are in the -wal
    con.close()
    return dst, ids


def wal_frames(wal):
    page_size = int.from_bytes(wal[8:12], "big")
    return page_size, [32 + k * (24 + page_size) for k in range((len(wal) - 32) // (24 + page_size))]


@pytest.mark.parametrize("damage", ["flipped", "cut"])
def test_damaged_or_cut_wal_is_moved_aside_untouched_and_its_readable_rows_saved(tmp_path, damage):
    folder, ids = copy_open_queue(tmp_path, 10)
    wal_path = folder / "queue.sqlite-wal"
    wal = bytearray(wal_path.read_bytes())
    page_size, frames = wal_frames(wal)
    if damage == "flipped":
        wal[frames[len(frames) // 2] + 24 + page_size // 2] ^= 0xFF   # inside a page of a middle frame
    else:
        del wal[-1]                                                 # the last commit frame cut by a byte
    wal_path.write_bytes(bytes(wal))
    q = SyncQueue(str(folder))
    q.close()
    [kept_wal] = glob.glob(str(folder / "queue.sqlite.corrupt-*-wal"))
    assert open(kept_wal, "rb").read() == bytes(wal)                 # moved, never deleted or changed
    q = SyncQueue(str(folder))
    try:
        [report] = q.damage_reports()
        assert "-wal" in report.reason
        rows = q.rows()
        assert report.saved == len(rows) and report.saved + report.lost == 10
        assert report.lost == 1 if damage == "cut" else report.lost >= 1
        assert [r.id for r in rows] == ids[:len(rows)]             # the oldest commits, in order
    finally:
        q.close()


def last_commit_damaged(tmp_path, write):
    """A copy, taken while open, of a queue ``write(queue)`` wrote to, with a byte of the -wal's
    last frame flipped (its commit is dropped)."""
    src, dst = tmp_path / "src", tmp_path / "q"
    q = SyncQueue(str(src))
    write(q)
    dst.mkdir()
    for suffix in ("", "-wal"):
        shutil.copyfile(src / ("queue.sqlite" + suffix), dst / ("queue.sqlite" + suffix))
    q.close()
    wal_path = dst / "queue.sqlite-wal"
    wal = bytearray(wal_path.read_bytes())
    page_size, frames = wal_frames(wal)
    wal[frames[-1] + 24 + page_size // 2] ^= 0xFF
    wal_path.write_bytes(bytes(wal))
    return dst


def test_a_damaged_wal_commit_holding_many_rows_counts_each_row_lost(tmp_path):
    """One commit may hold many rows (an older version's journal is imported in one, a salvage
    carries its rows in one): losing it loses them all, and the report must say how many."""
    ids = []

    def write(q):
        ids.append(q.enqueue_change(change("W", item="before")))
        assert q.import_once("journal-1", [change("W", item=f"imported-{i}") for i in range(6)])

    dst = last_commit_damaged(tmp_path, write)  # the import's commit is gone
    first = ids[0]
    q = SyncQueue(str(dst))
    try:
        report = q.damage
        assert report is not None and [r.id for r in q.rows()] == [first]
        assert report.saved == 1 and report.lost == 6, report  # six changes, not "1 could not be read"
        assert "6 could not be read" in report.message()
    finally:
        q.close()


def test_a_damaged_wal_commit_that_only_updated_a_row_loses_no_change(tmp_path):
    """A claim and a recorded send are commits that change a row, not new changes: losing them
    reverts the row's state (it is saved, to be judged again), and no change is counted lost."""
    ids = []

    def write(q):
        ids.append(q.enqueue_change(change("W", item="only")))
        [claimed] = q.claim("srv")
        assert q.begin_send(claimed.id, 30.0)

    dst = last_commit_damaged(tmp_path, write)  # the recorded send's commit is gone
    rid = ids[0]
    q = SyncQueue(str(dst))
    try:
        report = q.damage
        assert report is not None and [r.id for r in q.rows()] == [rid]
        assert report.saved == 1 and report.lost == 0, report
    finally:
        q.close()


def test_a_value_no_queue_writes_is_found_and_kept_as_failed(tmp_path):
    path, ids = make_queue(tmp_path, 3)
    con = sqlite3.connect(path)
    con.execute("PRAGMA ignore_check_constraints = 1")           # what damage does, written plainly
    con.execute(f"UPDATE {TABLE} SET status = 'pendin' WHERE id = ?", (ids[1],))
    con.commit()
    con.close()
    q = SyncQueue(str(tmp_path))
    try:
        assert q.get(ids[1]).status == FAILED and "'pendin'" in q.get(ids[1]).error_message
        assert [r.id for r in q.claim("srv")] == [ids[0], ids[2]]
        assert q.damage and "damaged status" in q.damage.reason
        assert (q.damage.saved, q.damage.saved_as_failed, q.damage.lost) == (3, 1, 0)
    finally:
        q.close()


KILLED = textwrap.dedent("""
    import sys
    from playbacksync.changes import Change
    from playbacksync.queue import SyncQueue
    q = SyncQueue(sys.argv[1])
    for i in range(5):
        q.enqueue_change(Change(f"item{i}", "srv", "u", "mark_watched"))
    q.get_pending()
    print("ready", flush=True)
    sys.stdin.readline()
""")


def test_after_an_unclean_shutdown_a_big_file_gets_the_full_check(tmp_path, monkeypatch):
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(tmp_path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=environment(tmp_path, PYTHONPATH=PLUGIN))
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    path = os.path.join(str(tmp_path), "queue.sqlite")
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    flip_status_in(path, "ix_queue_claim")   # an index entry no longer matches its row: integrity_check sees it
    monkeypatch.setattr(opening, "FULL_CHECK_BYTES", 0)   # as for a big file: quick_check unless unclean
    q = SyncQueue(str(tmp_path))
    try:
        assert len(q.claim("srv")) == 5                   # the claim index no longer hides a row
        assert q.damage and (q.damage.saved, q.damage.lost) == (5, 0)
    finally:
        q.close()


def test_status_and_sync_show_what_was_saved_and_lost(tmp_path):
    data = half_cut_queue(tmp_path / "data")
    first = playback_sync("--data-dir", data, "status", "--no-check", home=tmp_path)
    assert "was damaged" in first.stderr and "change(s) saved" in first.stderr, first.stderr
    again = playback_sync("--data-dir", data, "status", "--no-check", home=tmp_path)   # still shown later
    assert again.returncode == 1, again.stderr
    assert "Damaged:" in again.stdout and "could not be read" in again.stdout, again.stdout
    as_json = playback_sync("--data-dir", data, "status", "--no-check", "--json", home=tmp_path)
    [damaged] = json.loads(as_json.stdout)["damaged_files"]
    assert damaged["saved"] + damaged["lost"] == 400 and os.path.exists(damaged["moved_to"])
    logs = "".join(p.read_text() for p in tmp_path.rglob("*.log"))
    assert "could not be read" in logs


def test_damage_found_while_in_use_is_moved_aside_at_the_next_open(tmp_path, monkeypatch):
    path, ids = make_queue(tmp_path, 5)
    flip_status_in(path, "ix_queue_claim")
    monkeypatch.setattr(opening, "FULL_CHECK_BYTES", 0)   # a big file after a clean shutdown: quick_check only
    q = SyncQueue(str(tmp_path))
    try:
        assert q.damage is None
        with pytest.raises(QueueError, match="damaged"):
            q.claim("srv")
    finally:
        q.close()
    q = SyncQueue(str(tmp_path))                            # "restart to move it aside" does
    try:
        assert [r.id for r in q.claim("srv")] == ids
        assert q.damage and (q.damage.saved, q.damage.lost) == (5, 0)
    finally:
        q.close()


def test_the_viewer_hears_how_many_changes_were_saved_and_lost(tmp_path):
    from playbacksync.app import SyncService
    from playbacksync.config import Config

    data = half_cut_queue(tmp_path / "data")
    service = SyncService(Config(), str(data))
    heard = []
    service.subscribe(heard.append)
    service.start()
    try:
        assert service.wait_ready(10)
    finally:
        service.stop(3.0)
    q = SyncQueue(str(data))
    [report] = q.damage_reports()
    q.close()
    texts = [m.message for m in heard if m.kind == "failed"]
    assert any(f"{report.saved} change(s) saved, {report.lost} could not be read" in t for t in texts), texts
    assert report.saved > 0 and report.saved + report.lost == 400
