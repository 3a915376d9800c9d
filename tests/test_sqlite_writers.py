"""Writers of one process take turns on a lock of ours, not on SQLite's busy handler.

SQLite's busy handler retries a locked BEGIN IMMEDIATE after sleeps of 1, 2, 5, 10 … ms,
so two of our threads meeting cost one of them a millisecond or more each time (the
worker's connections write twice per request). Our threads wait on a lock instead, which
hands over as the holder commits. Other processes still meet SQLite's own lock.
"""
from __future__ import annotations

import sqlite3
import threading

import pytest

from playbacksync.sqlite_file import SqliteFile, StorageError


class _Traced(SqliteFile):
    """Records every statement that reaches SQLite, in order, with the thread that ran it."""

    def __init__(self, path, log, **kw):
        super().__init__(path, what="the test file", **kw)
        self.log = log

    def connect(self) -> sqlite3.Connection:
        con = super().connect()
        con.set_trace_callback(lambda sql: self.log.append((threading.current_thread().name, sql)))
        return con


class _WatchedLock:
    """The file's writer lock, telling when the second thread starts waiting on it."""

    def __init__(self, inner, waiting: threading.Event):
        self.inner, self.waiting = inner, waiting

    def acquire(self, blocking=True, timeout=-1):
        if threading.current_thread().name == "second":
            self.waiting.set()
        return self.inner.acquire(blocking, timeout)

    def release(self):
        self.inner.release()


def test_a_second_writer_in_the_process_waits_for_the_first_to_commit(tmp_path):
    log = []
    db = _Traced(str(tmp_path / "x.sqlite"), log)
    db.open()
    with db.tx("create") as con:
        con.execute("CREATE TABLE t (n INTEGER)")
    log.clear()
    # The second writer is under way when it waits on our lock, or (without one) when its
    # BEGIN has reached SQLite, whose busy handler then polls until the first commits.
    under_way = threading.Event()
    db._writers = _WatchedLock(db._writers, under_way) if hasattr(db, "_writers") else None
    db.log = _Signalling(log, under_way)

    def second():
        with db.tx("second") as con:
            con.execute("INSERT INTO t VALUES (2)")

    t = threading.Thread(target=second, name="second")
    with db.tx("first") as con:
        con.execute("INSERT INTO t VALUES (1)")
        t.start()
        assert under_way.wait(10)
    t.join(10)
    assert not t.is_alive()
    order = [(n, sql.split()[0]) for n, sql in log if sql.split()[0] in ("BEGIN", "COMMIT")]
    assert order.index(("second", "BEGIN")) > order.index(("MainThread", "COMMIT")), order
    with db.tx("read", write=False) as con:
        assert sorted(r[0] for r in con.execute("SELECT n FROM t")) == [1, 2]
    db.close()


class _Signalling:
    """A statement log that sets ``event`` when the second thread's first statement arrives."""

    def __init__(self, log: list, event: threading.Event):
        self.log, self.event = log, event

    def append(self, entry):
        self.log.append(entry)
        if entry[0] == "second":
            self.event.set()


def test_a_writer_held_up_past_the_busy_timeout_gets_the_locked_message(tmp_path):
    db = SqliteFile(str(tmp_path / "y.sqlite"), what="the test file", busy_timeout=0.2)
    db.open()
    with db.tx("create") as con:
        con.execute("CREATE TABLE t (n INTEGER)")
    failed = []

    def second():
        try:
            with db.tx("add a row") as con:
                con.execute("INSERT INTO t VALUES (2)")
        except StorageError as e:
            failed.append(str(e))

    with db.tx("hold") as con:
        con.execute("INSERT INTO t VALUES (1)")
        t = threading.Thread(target=second)
        t.start()
        t.join(5)
    assert failed and "stayed locked" in failed[0] and "add a row" in failed[0], failed
    db.close()


@pytest.mark.parametrize("write", [True, False])
def test_an_error_inside_a_transaction_rolls_it_back(tmp_path, write):
    db = SqliteFile(str(tmp_path / "z.sqlite"), what="the test file")
    db.open()
    with db.tx("create") as con:
        con.execute("CREATE TABLE t (n INTEGER)")
    with pytest.raises(RuntimeError):
        with db.tx("add", write=write) as con:
            con.execute("INSERT INTO t VALUES (1)")
            raise RuntimeError("boom")
    with db.tx("read", write=False) as con:
        assert con.execute("SELECT count(*) FROM t").fetchone()[0] == 0
    with db.tx("add again") as con:  # the lock was given back
        con.execute("INSERT INTO t VALUES (1)")
    db.close()
