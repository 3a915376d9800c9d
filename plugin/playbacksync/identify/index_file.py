"""The item index's SQLite file: schema, opening, connections per thread, transactions.

A cache: an unreadable file, or one of another layout, is moved aside or
rebuilt, never repaired. ``ItemIndex`` (index.py) reads and writes the rows.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from typing import Iterator, List, Optional

from ..paths import data_dir as default_data_dir, private_file

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    server_id TEXT NOT NULL, item_id TEXT NOT NULL, name TEXT, kind TEXT NOT NULL DEFAULT '',
    duration_ms INTEGER, PRIMARY KEY (server_id, item_id));
CREATE TABLE IF NOT EXISTS paths (
    server_id TEXT NOT NULL, item_id TEXT NOT NULL, path TEXT NOT NULL, path_key TEXT NOT NULL,
    path_fold TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS paths_by_key ON paths (server_id, path_key);
CREATE INDEX IF NOT EXISTS paths_by_fold ON paths (server_id, path_fold);
CREATE INDEX IF NOT EXISTS paths_by_item ON paths (server_id, item_id);
CREATE TABLE IF NOT EXISTS ids (
    server_id TEXT NOT NULL, provider TEXT NOT NULL, value TEXT NOT NULL, item_id TEXT NOT NULL,
    PRIMARY KEY (server_id, provider, value, item_id));
CREATE INDEX IF NOT EXISTS ids_by_item ON ids (server_id, item_id, provider, value);
CREATE TABLE IF NOT EXISTS parts (
    server_id TEXT NOT NULL, part_id TEXT NOT NULL, item_id TEXT NOT NULL,
    PRIMARY KEY (server_id, part_id));
CREATE INDEX IF NOT EXISTS parts_by_item ON parts (server_id, item_id);
CREATE TABLE IF NOT EXISTS checks (
    server_id TEXT NOT NULL, item_id TEXT NOT NULL, kind TEXT, checked_at REAL,
    PRIMARY KEY (server_id, item_id));
CREATE TABLE IF NOT EXISTS meta (
    server_id TEXT PRIMARY KEY, refreshed_at REAL, item_count INTEGER,
    last_error TEXT, last_error_at REAL, identity TEXT, full_at REAL, since REAL);
CREATE TABLE IF NOT EXISTS staging_items (
    refresh_id TEXT NOT NULL, item_id TEXT NOT NULL, name TEXT, kind TEXT, duration_ms INTEGER,
    created_at REAL);
CREATE TABLE IF NOT EXISTS staging_paths (
    refresh_id TEXT NOT NULL, item_id TEXT NOT NULL, path TEXT, path_key TEXT, path_fold TEXT);
CREATE TABLE IF NOT EXISTS staging_ids (
    refresh_id TEXT NOT NULL, provider TEXT NOT NULL, value TEXT NOT NULL, item_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS staging_parts (
    refresh_id TEXT NOT NULL, part_id TEXT NOT NULL, item_id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS staging_items_by_refresh ON staging_items (refresh_id);
CREATE INDEX IF NOT EXISTS staging_paths_by_refresh ON staging_paths (refresh_id);
CREATE INDEX IF NOT EXISTS staging_ids_by_refresh ON staging_ids (refresh_id);
CREATE INDEX IF NOT EXISTS staging_parts_by_refresh ON staging_parts (refresh_id);
"""
_SERVER_TABLES = ("items", "paths", "ids", "parts", "checks")
_STAGING = ("staging_items", "staging_paths", "staging_ids", "staging_parts")
_TABLES = _SERVER_TABLES + ("meta",) + _STAGING


class IndexStorageError(Exception):
    """The index file cannot be created or opened (message names the file)."""


class IndexFile:
    """``<data_dir>/index.sqlite``, one connection per thread. Safe to share across threads."""

    def __init__(self, data_dir: Optional[str] = None, *, filename: str = "index.sqlite",
                 clock=time.time, busy_timeout: float = 30.0):
        self.data_dir = str(data_dir or default_data_dir())
        self.path = os.path.join(self.data_dir, filename)
        self._clock = clock
        self._timeout = busy_timeout
        self._local = threading.local()
        self._conns: List[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        try:
            os.makedirs(self.data_dir, exist_ok=True)
        except OSError as e:
            raise IndexStorageError("cannot create the data folder %s for the item index: %s"
                                    % (self.data_dir, e.strerror or e)) from None
        private_file(self.path)
        self._open()

    # -- storage -----------------------------------------------------------------

    def _open(self) -> None:
        try:
            self._init_schema()
        except sqlite3.DatabaseError as e:
            if isinstance(e, sqlite3.OperationalError) and not os.path.exists(self.path):
                raise IndexStorageError("cannot create the item index %s: %s" % (self.path, e)) from None
            if isinstance(e, sqlite3.OperationalError) and "locked" in str(e):
                raise IndexStorageError("the item index %s is locked by another program: %s"
                                        % (self.path, e)) from None
            # Unreadable (not a database, corrupt): it is only a cache, start afresh.
            self._close_all()
            aside = "%s.unreadable-%d" % (self.path, int(time.time()))
            log.warning("item index %s is unreadable (%s); moved to %s and rebuilt", self.path, e, aside)
            try:
                os.replace(self.path, aside)
                for suffix in ("-wal", "-shm"):
                    if os.path.exists(self.path + suffix):
                        os.remove(self.path + suffix)
                self._init_schema()
            except (OSError, sqlite3.DatabaseError) as e2:
                raise IndexStorageError("the item index %s is unusable: %s" % (self.path, e2)) from None

    def _init_schema(self) -> None:
        con = self._conn()
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            for t in _TABLES:  # an older layout: it is a cache, rebuild it
                con.execute("DROP TABLE IF EXISTS %s" % t)
        con.execute("PRAGMA journal_mode=WAL")
        con.executescript(_SCHEMA)  # idempotent
        con.execute("PRAGMA user_version=%d" % SCHEMA_VERSION)
        with self._tx() as con:
            # staging rows of refreshes that died over a day ago
            con.execute("DELETE FROM staging_items WHERE created_at < ?", (self._clock() - 86400,))
            live = "SELECT refresh_id FROM staging_items"
            con.execute("DELETE FROM staging_ids WHERE refresh_id NOT IN (%s)" % live)
            con.execute("DELETE FROM staging_parts WHERE refresh_id NOT IN (%s)" % live)
            con.execute("DELETE FROM staging_paths WHERE refresh_id NOT IN (%s)" % live)

    def _conn(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            try:
                con = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None,
                                      check_same_thread=False)
            except sqlite3.Error as e:
                raise IndexStorageError("cannot open the item index %s: %s" % (self.path, e)) from None
            con.execute("PRAGMA synchronous=NORMAL")  # a cache: losing the last refresh costs a refresh
            self._local.con = con
            with self._conns_lock:
                self._conns.append(con)
        return con

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        con = self._conn()
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def _close_all(self) -> None:
        with self._conns_lock:
            for con in self._conns:
                with contextlib.suppress(sqlite3.Error):
                    con.close()
            self._conns.clear()
        self._local = threading.local()

    def close(self) -> None:
        self._close_all()

    def close_thread(self) -> None:
        """Close the calling thread's connection (a refresh thread that is ending)."""
        con = getattr(self._local, "con", None)
        if con is None:
            return
        self._local.con = None
        with self._conns_lock:
            if con in self._conns:
                self._conns.remove(con)
        with contextlib.suppress(sqlite3.Error):
            con.close()
