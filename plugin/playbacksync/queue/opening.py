"""Opening the queue file: check it, migrate it to the head revision, move it aside if damaged.

A file already at the head revision (the usual open) is checked and used
through stdlib sqlite3 alone; dataset, SQLAlchemy and alembic (~0.3 s of CPU
to import) load only when the schema must change. The migrations run on
dataset's engine, which is closed before any change is read or written, so no
stale metadata survives a migration.

Damage is looked for before anything writes to the file: a main file cut
short, a -wal frame damaged or cut (when no other process has the file open),
pages SQLite reports damaged (``integrity_check``, or for a big file
``quick_check`` unless a process died with the file open), and rows whose status, type or
server no queue could have written. A damaged file is renamed
``queue.sqlite.corrupt-<UTC time>`` together with its -wal/-shm (see
:func:`playbacksync.sqlite_file.move_aside`; nothing is deleted), a fresh
queue started, and every row that can still be read carried into it
(:mod:`.salvage`); the :class:`~.salvage.DamageReport` says how many were saved
and how many could not be, and is logged and kept beside the moved file.
"""
from __future__ import annotations

import logging
import os
import sqlite3
from typing import Optional, Tuple
from urllib.parse import quote

from ..changes import CHANGE_TYPES, STATUSES
from ..sqlite_damage import header_damage, table_rows, truncation, wal_damage
from ..sqlite_file import (NEEDS_CHECK, Damaged, SqliteFile, StorageError, error_code, is_damaged, is_db_error,
                           move_aside, quick_check)
from . import salvage
from .salvage import TABLE, DamageReport

log = logging.getLogger(__name__)

# Files up to this size get the full integrity_check at every open (~40 ms for 10,000 rows),
# which also finds an index whose entries no longer match their rows (a claim would miss
# the row); bigger ones get quick_check, and the full check after an unclean shutdown.
FULL_CHECK_BYTES = 8 << 20


def open_queue(db: SqliteFile, *, unclean: bool = False, check_wal: bool = True, now: float = 0.0,
               probe: str = "") -> Optional[DamageReport]:
    """Open ``db`` (checked, migrated, pool started); what happened if it was damaged.

    ``unclean``: a process died with the file open, so the full integrity
    check runs. ``check_wal``: nobody else has the file open, so its -wal is
    at rest and can be checked frame by frame. ``probe``: a statement the queue
    runs on its table (all its columns): if the schema text itself was damaged
    (a column renamed), it fails here, not at every use.
    """
    try:
        _open_once(db, unclean=unclean, check_wal=check_wal, probe=probe)
        return None
    except Damaged as damaged:
        db.close()
        found = DamageReport(db.path, "", str(damaged), lost=damaged.lost, maybe_more=damaged.maybe_more, at=now)
        dropped_pages = damaged.pages
    moved = move_aside(db.path, "corrupt", what=db.what, error=db.error_class)
    _forget(db.path + NEEDS_CHECK)
    _open_once(db, probe=probe)
    found.moved_to = moved
    report = carry_over(db, found, dropped_pages)
    log.error("%s", report.message())
    report.write()
    return report


def carry_over(db: SqliteFile, report: DamageReport, dropped_pages=()) -> DamageReport:
    """Copy every usable row of ``report.moved_to`` into the (fresh) ``db``; counts into ``report``.

    ``dropped_pages``: pages of -wal frames SQLite dropped; ``report.lost`` counts their
    commits, but a commit may write many rows (an import, a salvage's carry-over) or only
    update some (a claim): when those pages hold rows of the queue, the ones that could not be
    read are what was lost (the commit count stays when no row of them can be found)."""
    with db.session("read the new queue's schema") as con:
        schema = {r[0]: r[1] for r in con.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL")}
    rows, unreadable, maybe_more = salvage.read_rows(report.moved_to, schema)
    report.maybe_more = report.maybe_more or maybe_more
    if dropped_pages:
        with db.session("read the new queue's columns") as con:
            width = len(con.execute(f"PRAGMA table_info({TABLE})").fetchall())
        held = table_rows(dropped_pages, width)
        if held:  # the rows those commits wrote: the ones not read are the changes lost
            report.lost = len(held - {row.get("id") for row in rows})
    if unreadable is None:
        report.unreadable_file = True
    else:
        report.lost += unreadable
    with db.tx("carry the saved changes into the new queue") as con:
        columns = [r[1] for r in con.execute(f"PRAGMA table_info({TABLE})")]
        for row in rows:
            if set(row) - set(columns) and len(row) == len(columns):  # a column name was damaged:
                row = dict(zip(columns, row.values()))                # same revision, same order
            why = salvage.check_row(row)
            if why is None:
                fixed, damaged_state = salvage.repair_row(row, report.at)
                names = [c for c in columns if c in fixed]
                con.execute("SAVEPOINT carry")
                try:
                    con.execute(f"INSERT INTO {TABLE} ({', '.join(names)}) VALUES "
                                f"({', '.join('?' * len(names))})", [fixed[c] for c in names])
                except sqlite3.DatabaseError as exc:
                    con.execute("ROLLBACK TO carry")
                    why = f"the new queue refused it ({exc})"
                else:
                    report.saved += 1
                    report.saved_as_failed += damaged_state
                con.execute("RELEASE carry")
            if why is not None:
                report.lost += 1
                log.warning("queue row %s (%s) could not be saved from the damaged file: %s",
                            row.get("id"), row.get("change_type"), why)
    return report


def _damaged_values(con: sqlite3.Connection) -> Optional[str]:
    """Why some row's status, type or server cannot be a queue's (damage quick_check misses)."""
    try:
        n = con.execute(
            f"SELECT COUNT(*) FROM {TABLE} WHERE status NOT IN ({', '.join('?' * len(STATUSES))}) "
            f"OR change_type NOT IN ({', '.join('?' * len(CHANGE_TYPES))}) OR typeof(source_id) != 'text'",
            (*STATUSES, *CHANGE_TYPES)).fetchone()[0]
    except UnicodeDecodeError:
        raise Damaged("the queue table's schema is damaged (not UTF-8)") from None
    except sqlite3.DatabaseError as exc:
        if is_damaged(exc):
            raise Damaged(error_code(exc)[1]) from None
        return None  # no queue table yet
    return f"{n} row(s) with a damaged status, type or server" if n else None


def _check_read_only(db: SqliteFile, *, unclean: bool, check_wal: bool) -> Tuple[bool, Optional[str]]:
    """Check an existing file on a read-only connection, before anything may write to it.

    A read-write connection would checkpoint or delete the -wal on close, so a
    damaged file would not be moved aside as it was. Returns (True, its schema
    revision or None) if the file is verified sound; (False, None) if this check
    could not run (the normal open decides). Raises :class:`Damaged`.
    """
    if not os.path.exists(db.path) or os.path.getsize(db.path) == 0:
        return False, None
    cut = truncation(db.path) or header_damage(db.path)
    if cut:
        raise Damaged(cut)
    wal = wal_damage(db.path) if check_wal else None
    if wal:
        raise Damaged(wal[0], lost=wal[1], maybe_more=wal[2], pages=wal[3])
    try:
        con = sqlite3.connect(f"file:{quote(db.path)}?mode=ro", uri=True, timeout=db.busy_timeout)
    except sqlite3.Error as exc:
        if is_damaged(exc):
            raise Damaged(error_code(exc)[1]) from None
        return False, None
    try:
        marker = db.path + NEEDS_CHECK  # left by an error that found the file damaged while in use
        full = unclean or os.path.exists(marker) or os.path.getsize(db.path) <= FULL_CHECK_BYTES
        try:  # reads every page: a scribbled file shows here; the full check also compares indexes
            quick_check(con, full=full)
        except sqlite3.Error:
            return False, None
        bad = _damaged_values(con)
        if bad:
            raise Damaged(bad)
        try:  # the table alembic keeps its revision in (absent in a new or foreign file)
            row = con.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.Error:
            row = None
    finally:
        con.close()
    _forget(marker)
    return True, (row[0] if row else None)


def _forget(marker: str) -> None:
    try:
        os.unlink(marker)
    except OSError:
        pass


def _open_once(db: SqliteFile, *, unclean: bool = False, check_wal: bool = False, probe: str = "") -> None:
    from .. import paths
    from . import migrations

    try:
        checked, revision = _check_read_only(db, unclean=unclean, check_wal=check_wal)
        paths.private_file(db.path)
        if not (checked and revision == migrations.HEAD):  # else sound and current: nothing to migrate
            _migrate(db, checked)
        db.open()
        if probe:
            _probe(db, probe)
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


def _probe(db: SqliteFile, sql: str) -> None:
    con = db.connect()
    try:
        con.execute(sql).fetchall()
    except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
        raise Damaged(f"the queue table's layout is damaged ({exc})") from None
    finally:
        con.close()


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
                current = migrations.current_revision(conn)
                if current is not None and current not in migrations.known_revisions():
                    # Never downgrade: the newer version's rows may need what we would drop.
                    raise db.error_class(
                        f"{db.what} {db.path} was written by a newer Playback Sync (schema revision "
                        f"{current}; this version knows up to {migrations.HEAD}). It was left untouched: "
                        "update Playback Sync to use it (or move the file away to start an empty queue)")
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
