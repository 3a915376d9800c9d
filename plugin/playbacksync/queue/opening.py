"""Opening the queue file: check it, migrate it to the head revision, move it aside if damaged.

A file already at the head revision (the usual open) is checked and used
through stdlib sqlite3 alone; dataset, SQLAlchemy and alembic (~0.3 s of CPU
to import) load only when the schema must change. The migrations run on
dataset's engine, which is closed before any change is read or written, so no
stale metadata survives a migration.

A file SQLite reports as corrupt or not a database is renamed
``queue.sqlite.corrupt-<UTC time>`` with its -wal/-shm (see
:func:`playbacksync.sqlite_file.move_aside`), logged, and a fresh queue
started; the caller is told where it went.
"""
from __future__ import annotations

import logging
import os
import sqlite3
from typing import Optional, Tuple
from urllib.parse import quote

from ..sqlite_file import Damaged, SqliteFile, StorageError, error_code, is_damaged, is_db_error, move_aside, quick_check

log = logging.getLogger(__name__)


def open_queue(db: SqliteFile) -> Optional[str]:
    """Open ``db`` (checked, migrated, pool started); where a damaged file was moved, if one was."""
    try:
        _open_once(db)
        return None
    except Damaged as damaged:
        db.close()
        moved = move_aside(db.path, "corrupt", what=db.what, error=db.error_class)
        log.error("the queue database %s was damaged (%s); moved it to %s and started an empty queue",
                  db.path, damaged, moved)
    _open_once(db)
    return moved


def _check_read_only(db: SqliteFile) -> Tuple[bool, Optional[str]]:
    """Check an existing file on a read-only connection, before anything may write to it.

    A read-write connection would checkpoint or delete the -wal on close, so a
    damaged file would not be moved aside as it was. Returns (True, its schema
    revision or None) if the file is verified sound; (False, None) if this check
    could not run (the normal open decides).
    """
    if not os.path.exists(db.path) or os.path.getsize(db.path) == 0:
        return False, None
    try:
        con = sqlite3.connect(f"file:{quote(db.path)}?mode=ro", uri=True, timeout=db.busy_timeout)
    except sqlite3.Error as exc:
        if is_damaged(exc):
            raise Damaged(error_code(exc)[1]) from None
        return False, None
    try:
        try:
            quick_check(con)  # reads every page: a truncated or scribbled file shows here
        except sqlite3.Error:
            return False, None
        try:  # the table alembic keeps its revision in (absent in a new or foreign file)
            row = con.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.Error:
            row = None
    finally:
        con.close()
    return True, (row[0] if row else None)


def _open_once(db: SqliteFile) -> None:
    from .. import paths
    from . import migrations

    try:
        checked, revision = _check_read_only(db)
        paths.private_file(db.path)
        if not (checked and revision == migrations.HEAD):  # else sound and current: nothing to migrate
            _migrate(db, checked)
        db.open()
    except Damaged:
        db.close()
        raise
    except StorageError as exc:
        db.close()
        if exc.damaged:
            raise Damaged(str(exc)) from None
        raise
    except Exception as exc:
        db.close()
        if not is_db_error(exc):
            raise
        if is_damaged(exc):
            raise Damaged(error_code(exc)[1]) from None
        raise db.error(exc, "open") from None


def _migrate(db: SqliteFile, checked: bool) -> None:
    from . import migrations

    engine = _engine(db)
    try:
        with engine.engine.connect() as conn:
            with conn.begin():
                if not checked:
                    problems = [r[0] for r in conn.exec_driver_sql("PRAGMA quick_check").fetchall()]
                    if problems != ["ok"]:
                        raise Damaged("; ".join(problems[:3]))
                migrations.upgrade(conn)
    finally:
        try:
            engine.close()
        except Exception:  # closing a broken engine must not hide the real error
            log.debug("closing the queue database after migrating failed", exc_info=True)


def _engine(db: SqliteFile):
    """dataset's engine, for the migrations (alembic works on a SQLAlchemy connection)."""
    import dataset
    from sqlalchemy import event

    def creator():
        # The path goes to sqlite3 as is: in a URL a "?" or "#" in a folder name would
        # silently open another file.
        return sqlite3.connect(db.path, timeout=db.busy_timeout, check_same_thread=False)

    engine = dataset.connect(
        "sqlite:///" + os.path.basename(db.path),  # picks the file-database pool; see creator
        engine_kwargs={"creator": creator},
        on_connect_statements=[f"PRAGMA busy_timeout={int(db.busy_timeout * 1000)}",
                               f"PRAGMA synchronous={db.synchronous}"],
        sqlite_wal_mode=True,
    )

    def on_connect(dbapi_con, _record):
        # pysqlite's own implicit BEGIN is deferred and skips SELECTs; we begin ourselves.
        dbapi_con.isolation_level = None
        dbapi_con.row_factory = sqlite3.Row

    def on_begin(conn):
        # SQLAlchemy-level transactions (the migrations) take the write lock at once too.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(engine.engine, "connect", on_connect)
    event.listen(engine.engine, "begin", on_begin)
    return engine
