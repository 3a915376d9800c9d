"""The item index's SQLite file: schema, opening, transactions.

A cache: an unreadable file, or one of another layout, is moved aside or
rebuilt, never repaired. Connections, transactions and the mapping of SQLite's
errors to messages are the project's one SQLite plumbing (``sqlite_file.py``),
shared with the queue. ``ItemIndex`` (index.py) reads and writes the rows.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Optional

from ..paths import data_dir as default_data_dir, private_file
from ..sqlite_file import SqliteFile, StorageError, move_aside

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


class IndexStorageError(StorageError):
    """The index file cannot be created or opened (message names the file)."""


class IndexFile:
    """``<data_dir>/index.sqlite`` on the shared SQLite plumbing. Safe to share across threads."""

    def __init__(self, data_dir: Optional[str] = None, *, filename: str = "index.sqlite",
                 clock=time.time, busy_timeout: float = 30.0):
        try:
            self.data_dir = str(data_dir or default_data_dir())
        except OSError as e:
            raise IndexStorageError("cannot create the data folder for the item index: %s"
                                    % (e.strerror or e)) from None
        self.path = os.path.join(self.data_dir, filename)
        self.problem: Optional[str] = None  # why a temporary index stands in (open_or_temporary)
        self._temporary: Optional[str] = None
        self._clock = clock
        # synchronous NORMAL: a cache, losing the last refresh costs a refresh
        self._db = SqliteFile(self.path, what="the item index", error=IndexStorageError,
                              busy_timeout=busy_timeout, synchronous="NORMAL")
        try:
            os.makedirs(self.data_dir, exist_ok=True)
        except OSError as e:
            raise IndexStorageError("cannot create the data folder %s for the item index: %s"
                                    % (self.data_dir, e.strerror or e)) from None
        private_file(self.path)
        self._open()

    @classmethod
    def open_or_temporary(cls, data_dir: Optional[str] = None, **options):
        """The index in ``data_dir``; if that cannot be used (a read-only folder, say), a temporary
        one for this process, rebuilt from the servers as needed. ``problem`` then says why."""
        try:
            return cls(data_dir, **options)
        except IndexStorageError as e:
            import tempfile

            folder = tempfile.mkdtemp(prefix="playback-sync-index-")
            index = cls(folder, **options)
            index._temporary = folder
            index.problem = "%s; using a temporary item index for this run" % e
            log.warning("%s", index.problem)
            return index

    # -- storage -----------------------------------------------------------------

    def _open(self) -> None:
        if os.path.lexists(self.path) and not os.path.isfile(self.path):  # a folder, say: not ours
            aside = move_aside(self.path, "unusable", what=self._db.what, error=IndexStorageError)
            log.warning("item index %s was not a file; moved it to %s and rebuilt the index", self.path, aside)
        try:
            self._init_schema()
        except IndexStorageError as e:
            if not e.damaged:
                raise
            # Unreadable (not a database, corrupt): it is only a cache, start afresh.
            self._db.close()
            aside = move_aside(self.path, "unreadable", what=self._db.what, error=IndexStorageError)
            log.warning("item index %s is unreadable (%s); moved to %s and rebuilt", self.path, e, aside)
            self._init_schema()

    def _init_schema(self) -> None:
        self._db.open()
        with self._db.session("create the item index") as con:
            version = con.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                for t in _TABLES:  # an older layout: it is a cache, rebuild it
                    con.execute("DROP TABLE IF EXISTS %s" % t)
            con.executescript(_SCHEMA)  # idempotent
            con.execute("PRAGMA user_version=%d" % SCHEMA_VERSION)
        with self._tx() as con:
            # staging rows of refreshes that died over a day ago
            con.execute("DELETE FROM staging_items WHERE created_at < ?", (self._clock() - 86400,))
            live = "SELECT refresh_id FROM staging_items"
            con.execute("DELETE FROM staging_ids WHERE refresh_id NOT IN (%s)" % live)
            con.execute("DELETE FROM staging_parts WHERE refresh_id NOT IN (%s)" % live)
            con.execute("DELETE FROM staging_paths WHERE refresh_id NOT IN (%s)" % live)

    def _tx(self, action: str = "update the item index"):
        return self._db.tx(action)

    def _read(self, action: str = "read the item index"):
        return self._db.session(action)

    def close(self) -> None:
        self._db.close()
        if self._temporary:
            import shutil

            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary = None
