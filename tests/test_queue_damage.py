"""Bad storage: damaged files are moved aside; locks and read-only folders give QueueError."""
import contextlib
import glob
import logging
import os
import sqlite3
import subprocess

import pytest

from playbacksync.queue import QueueError, SyncQueue

from .test_queue_support import all_rows, change


ROWS = 400


def make_queue_with_rows(folder, n=ROWS):
    q = SyncQueue(str(folder))
    for i in range(n):
        q.enqueue_change(change("P", pos=i, item=f"item-{i:05d}-" + "x" * 40))
    q.close()
    return os.path.join(str(folder), "queue.sqlite")


def assert_fresh_queue_and_bad_file_kept(folder, original_bytes, caplog):
    q = SyncQueue(str(folder))
    try:
        assert q.moved_aside and os.path.basename(q.moved_aside).startswith("queue.sqlite.corrupt-")
        with open(q.moved_aside, "rb") as fh:
            assert fh.read() == original_bytes            # moved, never deleted or changed
        for row in q.rows():                              # what was saved is what was written
            assert (row.media_item_id, row.position_ms) == (f"item-{row.id - 1:05d}-" + "x" * 40, row.id - 1)
        report = q.damage
        if report.saved or report.lost:                   # every row is accounted for
            assert report.saved == len(q.rows()) and report.saved + report.lost == ROWS
        row_id = q.enqueue_change(change("P"))              # a fresh queue works
        assert q.get(row_id).position_ms == 1000
    finally:
        q.close()
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("damaged" in m and q.moved_aside in m for m in messages), messages


def test_garbage_file_is_moved_aside_and_a_fresh_queue_started(tmp_path, caplog):
    path = tmp_path / "queue.sqlite"
    garbage = os.urandom(4096) + b"this is not a database" * 100
    path.write_bytes(garbage)
    (tmp_path / "queue.sqlite-wal").write_bytes(b"stale wal")
    assert_fresh_queue_and_bad_file_kept(tmp_path, garbage, caplog)
    [kept] = glob.glob(str(tmp_path / "queue.sqlite.corrupt-*-wal"))   # its journal goes with it
    assert open(kept, "rb").read() == b"stale wal"
    assert not os.path.exists(tmp_path / "queue.sqlite-wal") or \
        open(tmp_path / "queue.sqlite-wal", "rb").read() != b"stale wal"


def test_truncated_file_is_moved_aside(tmp_path, caplog):
    path = make_queue_with_rows(tmp_path)
    data = open(path, "rb").read()
    assert len(data) > 8192
    cut = data[: len(data) // 2]
    with open(path, "wb") as fh:
        fh.write(cut)
    assert_fresh_queue_and_bad_file_kept(tmp_path, cut, caplog)


def test_scribbled_page_is_moved_aside(tmp_path, caplog):
    path = make_queue_with_rows(tmp_path)
    data = bytearray(open(path, "rb").read())
    page = 4096
    for n in range(1, len(data) // page):                # b-tree page headers scribbled, file header kept
        data[n * page: n * page + 12] = b"\xff" * 12
    with open(path, "wb") as fh:
        fh.write(bytes(data))
    assert_fresh_queue_and_bad_file_kept(tmp_path, bytes(data), caplog)


def test_damaged_file_is_moved_aside_with_its_unmerged_wal_untouched(tmp_path, caplog):
    import shutil

    # A file whose latest commits are still only in the -wal (a writer never closed it).
    src = tmp_path / "src"
    src.mkdir()
    con = sqlite3.connect(src / "queue.sqlite", isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA wal_autocheckpoint=0")
    con.execute("CREATE TABLE t (x)")
    for _ in range(200):
        con.execute("INSERT INTO t VALUES (?)", ("x" * 100,))
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")          # t's pages now live in the main file
    con.execute("CREATE TABLE later (x)")
    con.execute("INSERT INTO later VALUES ('only in the wal')")
    folder = tmp_path / "q"
    folder.mkdir()
    shutil.copy(src / "queue.sqlite", folder / "queue.sqlite")
    shutil.copy(src / "queue.sqlite-wal", folder / "queue.sqlite-wal")
    con.close()
    data = bytearray((folder / "queue.sqlite").read_bytes())
    page = 4096
    for n in range(1, len(data) // page):                  # t's b-tree pages scribbled in the main file
        data[n * page: n * page + 12] = b"\xff" * 12
    (folder / "queue.sqlite").write_bytes(bytes(data))
    wal = (folder / "queue.sqlite-wal").read_bytes()
    assert len(wal) > 0

    assert_fresh_queue_and_bad_file_kept(folder, bytes(data), caplog)
    [kept] = glob.glob(str(folder / "queue.sqlite.corrupt-*-wal"))
    assert open(kept, "rb").read() == wal                  # the unmerged commits are kept as they were


def test_a_second_damaged_file_does_not_overwrite_the_first(tmp_path):
    for n in range(2):
        (tmp_path / "queue.sqlite").write_bytes(b"garbage %d" % n * 500)
        SyncQueue(str(tmp_path)).close()
    kept = sorted(glob.glob(str(tmp_path / "queue.sqlite.corrupt-*")))
    assert len(kept) == 2
    assert {open(k, "rb").read()[:9] for k in kept} == {b"garbage 0", b"garbage 1"}


def test_locked_beyond_busy_timeout_raises_and_loses_nothing(tmp_path):
    q = SyncQueue(str(tmp_path), busy_timeout=0.2)
    first = q.enqueue_change(change("P", item="first"))
    other = sqlite3.connect(q.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")                     # another program holds the write lock
    try:
        with pytest.raises(QueueError, match="locked by another program.*nothing already queued was lost"):
            q.enqueue_change(change("P", item="second"))
        with pytest.raises(QueueError, match="locked"):
            q.claim("srv")
        with pytest.raises(QueueError, match="locked"):
            SyncQueue(str(tmp_path), busy_timeout=0.2)    # opening needs the lock to check/migrate
    finally:
        other.execute("ROLLBACK")
        other.close()
    # The same queue (and thread) works again once the lock is gone.
    second = q.enqueue_change(change("P", item="second"))
    assert [r.id for r in q.get_pending()] == [first, second]
    q.close()


@contextlib.contextmanager
def read_only_folder(folder):
    """Make ``folder`` unwritable even for root (chattr +i), else with chmod."""
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
            pytest.skip("needs chattr +i to make a folder read-only for root")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        os.chmod(folder, 0o500)
        try:
            yield
        finally:
            os.chmod(folder, 0o700)


def test_read_only_folder_without_a_queue_raises_clear_error(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    with read_only_folder(folder):
        with pytest.raises(QueueError) as err:
            SyncQueue(str(folder))
    assert str(folder) in str(err.value) and "writable" in str(err.value)


def test_read_only_folder_with_a_queue_raises_and_keeps_the_rows(tmp_path):
    folder = tmp_path / "ro"
    q = SyncQueue(str(folder))
    kept = q.enqueue_change(change("P"))
    q.close()
    with read_only_folder(folder):
        with pytest.raises(QueueError, match="writable"):
            SyncQueue(str(folder))
    assert [r["id"] for r in all_rows(str(folder / "queue.sqlite"))] == [kept]
    assert not glob.glob(str(folder / "*.corrupt-*"))     # not mistaken for damage


def test_uncreatable_data_folder_raises_queue_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(QueueError, match="cannot create the queue folder"):
        SyncQueue(str(blocker / "sub"))
