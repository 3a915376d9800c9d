"""SQLite plumbing shared by the queue and the item index: one way to open, transact and fail.

* :func:`connect` opens a stdlib sqlite3 connection with our settings (WAL,
  busy timeout, synchronous level; ``isolation_level=None`` so transactions
  begin where we say, not where pysqlite guesses).
* :class:`Connections` is a small free list of such connections shared by a
  file's threads: each transaction takes one and gives it back.
* :class:`SqliteFile` ties a path to its pool and runs transactions
  (:meth:`SqliteFile.tx`); any sqlite3 error leaving a transaction becomes the
  caller's :class:`StorageError` subclass with a message that names the file
  and says what to do (:func:`describe`).
* :func:`is_damaged` tells a damaged file (corrupt, not a database) from the
  other errors; :func:`move_aside` renames a damaged file together with its
  ``-wal``, ``-shm`` and ``-journal`` (never deletes them: the -wal may hold
  the last rows).
"""
from __future__ import annotations

import logging
import os
import sqlite3
import sys
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, List, Optional, Tuple, Type

log = logging.getLogger(__name__)

# SQLite primary result codes we tell apart.
PERM, BUSY, LOCKED, READONLY, IOERR, CORRUPT, FULL, CANTOPEN, NOTADB = 3, 5, 6, 8, 10, 11, 13, 14, 26
SIDE_FILES = ("-wal", "-shm", "-journal")
NEEDS_CHECK = ".needs-check"  # beside a file found damaged while in use: check it fully at the next open


class StorageError(Exception):
    """A SQLite file of ours cannot be used; the message says which file and why.

    ``damaged`` is True when SQLite found the file corrupt or not a database.
    """

    damaged = False


class Damaged(Exception):
    """The file is damaged (corrupt, truncated, not a database); the message says how.

    ``lost``: how many commits are known to be unreadable (a damaged -wal); ``maybe_more``:
    more may be gone that cannot be counted (the -wal was cut); ``pages``: the pages of the
    -wal frames SQLite drops, (number, bytes) (sqlite_damage.wal_damage).
    """

    def __init__(self, message: str, lost: int = 0, maybe_more: bool = False, pages=()):
        super().__init__(message)
        self.lost = lost
        self.maybe_more = maybe_more
        self.pages = list(pages)


def error_code(exc: BaseException) -> Tuple[Optional[int], str]:
    """(primary result code or None, message) of a sqlite3 error, possibly wrapped by SQLAlchemy."""
    orig = getattr(exc, "orig", None) or exc
    code = getattr(orig, "sqlite_errorcode", None)
    return (code & 0xFF if isinstance(code, int) else None), str(orig)


def is_db_error(exc: BaseException) -> bool:
    """A sqlite3 error, or SQLAlchemy's wrapper of one (SQLAlchemy is loaded only to migrate)."""
    if isinstance(exc, sqlite3.Error):
        return True
    sa_exc = sys.modules.get("sqlalchemy.exc")
    return sa_exc is not None and isinstance(exc, sa_exc.DBAPIError)


def is_damaged(exc: BaseException) -> bool:
    code, msg = error_code(exc)
    if code in (CORRUPT, NOTADB):
        return True
    msg = msg.lower()
    return "malformed" in msg or "not a database" in msg or "unsupported file format" in msg


def describe(exc: BaseException, *, what: str, path: str, action: str, busy_timeout: float,
             held: str = "stored") -> str:
    """A message fit to show for a sqlite3 error on ``path`` (``what``: "the queue database";
    ``held``: how its rows got there, "queued")."""
    code, msg = error_code(exc)
    low = msg.lower()
    folder = os.path.dirname(path) or "."
    if code in (BUSY, LOCKED) or "locked" in low or "busy" in low:
        return (f"{what} {path} stayed locked by another program for more than {busy_timeout:g} s "
                f"({action}); nothing already {held} was lost, try again")
    if code in (READONLY, CANTOPEN, IOERR) and _read_only_fs(folder):
        return (f"{what} {path} cannot be written ({action}): {folder} is on a read-only file system; "
                "make it writable, or point PLAYBACK_SYNC_DATA_DIR (--data-dir) at a writable folder")
    if code == READONLY or "readonly" in low or "read-only" in low:
        return f"{what} {path} is read-only ({action}): check that {folder} and the file are writable"
    if code in (CANTOPEN, PERM) or "unable to open" in low:
        return f"cannot open {what} {path}: check that {folder} exists and is writable"
    if code == FULL or "full" in low or (code in (IOERR, CANTOPEN) and disk_is_full(folder)):
        # SQLite reports a write refused for lack of space as a plain "disk I/O error"
        # when it hits the -wal or -shm; the free space tells.
        return (f"the disk holding {what} {path} is full ({action}): free some space on it; "
                f"nothing already {held} was lost")
    if code in (CORRUPT, NOTADB):
        return f"{what} {path} is damaged ({msg}); restart to move it aside"
    return f"error in {what} {path} while trying to {action}: {msg}"


def _read_only_fs(folder: str) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def disk_is_full(folder: str) -> bool:
    """Whether the file system holding ``folder`` has (almost) no room left for us."""
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):  # AttributeError: Windows has no statvfs
        try:
            import shutil

            return shutil.disk_usage(folder).free < 64 * 1024
        except OSError:
            return False
    return st.f_bavail * st.f_frsize < 64 * 1024


def lenient_text(raw: bytes) -> str:
    """TEXT as str; bytes that are not UTF-8 (damage from outside) as U+FFFD instead of an
    exception in the middle of reading the queue."""
    return str(raw, "utf-8", "replace")


def connect(path: str, *, busy_timeout: float, synchronous: str = "FULL",
            uri: bool = False) -> sqlite3.Connection:
    """A sqlite3 connection to ``path`` in WAL mode, rows as sqlite3.Row, no implicit BEGIN."""
    con = sqlite3.connect(path, timeout=busy_timeout, check_same_thread=False, isolation_level=None, uri=uri)
    try:
        con.row_factory = sqlite3.Row
        con.text_factory = lenient_text
        for pragma in (f"PRAGMA busy_timeout={int(busy_timeout * 1000)}",
                       f"PRAGMA synchronous={synchronous}", "PRAGMA journal_mode=WAL"):
            con.execute(pragma)
    except BaseException:
        con.close()
        raise
    return con


class Connections:
    """sqlite3 connections for a file's threads: one per transaction, idle ones kept for reuse."""

    KEEP = 5

    def __init__(self, connect: Callable[[], sqlite3.Connection]):
        self._connect = connect
        self._idle: List[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.closed = False

    def get(self) -> sqlite3.Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._connect()

    def put(self, con: sqlite3.Connection, reuse: bool = True) -> None:
        with self._lock:
            if reuse and not self.closed and not con.in_transaction and len(self._idle) < self.KEEP:
                self._idle.append(con)
                return
        con.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle, self.closed = self._idle, [], True
        for con in idle:
            con.close()


class SqliteFile:
    """One SQLite file of ours: its connection pool, transactions and error messages."""

    def __init__(self, path: str, *, what: str, error: Type[StorageError] = StorageError,
                 busy_timeout: float = 5.0, synchronous: str = "FULL", held: str = "stored"):
        self.path = path
        self.what = what  # "the queue database": starts every message about this file
        self.held = held  # "queued": how its rows got there, for messages
        self.error_class = error
        self.busy_timeout = float(busy_timeout)
        self.synchronous = synchronous.upper()
        self._pool: Optional[Connections] = None
        # Our own threads take turns for the write lock here: SQLite's busy handler polls
        # with sleeps of 1, 2, 5 … ms, so two of our writers meeting cost a millisecond or more
        # each time; this lock hands over at once. Other processes still meet SQLite's lock.
        self._writers = threading.RLock()

    def connect(self) -> sqlite3.Connection:
        return connect(self.path, busy_timeout=self.busy_timeout, synchronous=self.synchronous)

    def open(self) -> None:
        """Start the pool and connect once now: an unusable file fails here, as it should."""
        self.close()
        pool = Connections(self.connect)
        try:
            pool.put(pool.get())
        except sqlite3.Error as exc:
            pool.close()
            raise self.error(exc, "open") from None
        self._pool = pool

    @property
    def is_open(self) -> bool:
        return self._pool is not None and not self._pool.closed

    def error(self, exc: BaseException, action: str) -> StorageError:
        err = self.error_class(describe(exc, what=self.what, path=self.path, action=action,
                                        busy_timeout=self.busy_timeout, held=self.held))
        err.damaged = is_damaged(exc)
        if err.damaged:  # the next open checks the whole file, whatever its size
            try:
                open(self.path + NEEDS_CHECK, "a").close()
            except OSError:
                pass
        return err

    @contextmanager
    def session(self, action: str) -> Iterator[sqlite3.Connection]:
        """A pooled connection outside any transaction (schema scripts, pragmas)."""
        pool = self._pool
        if pool is None or pool.closed:
            raise self.error_class(f"{self.what} {self.path} is closed")
        try:
            con = pool.get()
        except sqlite3.Error as exc:
            raise self.error(exc, action) from None
        reuse = True
        try:
            yield con
        except UnicodeDecodeError:  # an error message quoting damaged bytes of the schema
            err = self.error_class(f"{self.what} {self.path} is damaged (its schema is not UTF-8); "
                                   "restart to move it aside")
            err.damaged = True
            try:
                open(self.path + NEEDS_CHECK, "a").close()
            except OSError:
                pass
            raise err from None
        except sqlite3.Error as exc:
            if con.in_transaction:
                try:
                    con.execute("ROLLBACK")
                except sqlite3.Error:
                    reuse = False
            raise self.error(exc, action) from None
        finally:
            pool.put(con, reuse)

    @contextmanager
    def tx(self, action: str, write: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction; errors become ``error_class`` naming ``action``.

        A write begins IMMEDIATE: the write lock is taken before anything is
        read, so a read-then-write cannot interleave with another thread or
        process. A connection whose ROLLBACK failed is closed, never reused.
        """
        if not write:
            with self.session(action) as con:
                yield from _in_transaction(con, "BEGIN")
            return
        if not self._writers.acquire(timeout=self.busy_timeout):
            raise self.error(sqlite3.OperationalError("database is locked"), action)
        try:
            with self.session(action) as con:
                yield from _in_transaction(con, "BEGIN IMMEDIATE")
        finally:
            self._writers.release()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


def _in_transaction(con: sqlite3.Connection, begin: str) -> Iterator[sqlite3.Connection]:
    con.execute(begin)
    try:
        yield con
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def quick_check(con: sqlite3.Connection, full: bool = False) -> None:
    """Raise :class:`Damaged` unless ``PRAGMA quick_check`` (reads every page) says ok.

    ``full``: ``integrity_check`` instead (also compares every index with its table).
    """
    con.text_factory = lenient_text  # its messages quote the damaged bytes
    try:
        problems = [r[0] for r in con.execute("PRAGMA integrity_check" if full else "PRAGMA quick_check")]
    except UnicodeDecodeError:  # SQLite's own message quotes a damaged schema's bytes
        raise Damaged("its schema is damaged (not UTF-8)") from None
    except sqlite3.Error as exc:
        if is_damaged(exc):
            raise Damaged(error_code(exc)[1]) from None
        raise
    if problems != ["ok"]:
        raise Damaged("; ".join(problems[:3]))


def move_aside(path: str, tag: str, *, what: str = "the database",
               error: Type[StorageError] = StorageError) -> str:
    """Rename ``path`` and its -wal/-shm/-journal to ``<path>.<tag>-<UTC time>[-n]``; the new path.

    Nothing is deleted: the side files go along (a -wal may hold rows not yet
    in the main file), so what was there can still be inspected or salvaged.
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = f"{path}.{tag}-{stamp}"
    n = 1
    while any(os.path.lexists(target + s) for s in ("",) + SIDE_FILES):
        n += 1
        target = f"{path}.{tag}-{stamp}-{n}"
    try:
        if os.path.lexists(path):
            os.replace(path, target)
        for suffix in SIDE_FILES:
            if os.path.lexists(path + suffix):
                os.replace(path + suffix, target + suffix)
    except OSError as exc:
        raise error(f"{what} {path} is damaged and could not be moved aside: "
                    f"{exc.strerror or exc}") from None
    return target
