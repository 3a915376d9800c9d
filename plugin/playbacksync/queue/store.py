"""The durable sync queue: one SQLite file, rows pending → syncing → synced | failed.

Where: ``<data dir>/queue.sqlite``; the data dir is the constructor's
``data_dir``, else ``$PLAYBACK_SYNC_DATA_DIR``, else the platform's user data
folder (see :mod:`playbacksync.paths`). The schema is kept by alembic
migrations run at open through ``dataset``'s engine; a file already at the
head revision (the usual open) is used through stdlib sqlite3 connections
alone, so dataset, SQLAlchemy and alembic (~0.3 s of CPU to import) load only
when the schema must change.

Durability
    WAL journal, ``synchronous=FULL``, busy timeout 5 s. When
    ``enqueue_change`` returns, the change is in the WAL file and fsynced: it
    survives the player or the process being killed, and also a power cut or
    OS crash (a laptop whose battery dies while offline is exactly when the
    queue matters). The fsync makes an enqueue cost ~0.2–0.3 ms instead of
    ~30 µs with ``synchronous="NORMAL"`` (bench/bench_queue.py): nothing at one
    change per 10 s, so durability wins. NORMAL is still a constructor option;
    with it a killed process loses nothing, a power cut may roll back the last
    commits, and the file stays consistent either way. Writers wait up to the
    busy timeout for another process (a second mpv window) to finish; past it
    the caller gets a :class:`QueueError` and nothing already acknowledged is
    touched.

Transactions
    Every write is one short ``BEGIN IMMEDIATE`` transaction: the write lock is
    taken before anything is read, so the read-then-write of coalescing and
    recovery cannot interleave with another thread or process. A claim is a
    choice and an update inside one such transaction (no ``RETURNING``, so a
    Python bundling SQLite older than 3.35 works too). Each transaction takes
    a sqlite3 connection (WAL, busy timeout, synchronous) from a small free
    list shared by the queue's threads (see ``_tx``). Migrations run first, on
    dataset's engine, which is closed before any change is read or written,
    so no stale metadata survives a migration.

Coalescing (per key = server, media, user; only rows not yet sent are touched)
    The rule is written once, in :mod:`.rules`; :mod:`.coalesce` applies it to
    the rows inside each write transaction (see there). A key holds at most
    ``[watched|unwatched] [progress]`` pending; superseded rows are closed
    with the reason, never sent.

Claims, leases and outcomes
    :mod:`.claims` (per key only the oldest row, none while one is in flight;
    leases, sends recorded before they go out, outcomes only on our claims).

Recovery and retention
    :mod:`.maintenance` (claims of a dead owner, told by its free owner lock,
    or of an expired lease go back to pending; old synced rows are pruned).

Damaged files
    A file SQLite reports as corrupt or not a database is renamed
    ``queue.sqlite.corrupt-<UTC time>`` (with its -wal/-shm), logged, and a
    fresh queue started (:mod:`.opening`). A locked file, a read-only folder
    or a full disk raise :class:`QueueError` (messages: :mod:`playbacksync.sqlite_file`).

Modules
    :mod:`playbacksync.sqlite_file` (connections, transactions, error
    messages, shared with the item index), :mod:`.opening` (check, migrate,
    move aside), :mod:`.rules` (the coalescing rule), :mod:`.coalesce` (applying
    it in SQL), :mod:`.rows` (row ↔ change), :mod:`.reads` (reads),
    :mod:`.claims` (claims, leases, outcomes), :mod:`.maintenance` (failed
    rows, recovery, pruning), this module (opening, writes of changes).
"""
from __future__ import annotations

import os
import socket
import time
from contextlib import contextmanager
from typing import Iterable, List, Optional, Tuple

from ..changes import Change
from ..sqlite_file import SqliteFile, StorageError
from . import coalesce, owners, salvage
from .claims import QueueClaims
from .maintenance import QueueMaintenance
from .opening import open_queue
from .reads import QueueReads
from .rows import COLUMNS as _COLUMNS, TABLE, to_values
from .salvage import DamageReport



class QueueError(StorageError):
    """The queue's storage cannot be used; the message says which file and why."""


class SyncQueue(QueueReads, QueueClaims, QueueMaintenance):
    """The durable queue of changes waiting for a server (see the module docstring)."""

    def __init__(self, data_dir: Optional[str] = None, *, clock=time.time, lease_seconds: float = 120.0,
                 retention_days: float = 7.0, filename: str = "queue.sqlite",
                 busy_timeout: float = 5.0, synchronous: str = "FULL"):
        from .. import paths

        if synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be NORMAL, FULL or EXTRA, not {synchronous!r}")
        try:
            folder = paths.data_dir(data_dir)
        except OSError as exc:
            where = data_dir or os.environ.get(paths.DATA_DIR_ENV) or "the user data folder"
            raise QueueError(f"cannot create the queue folder {where}: {exc.strerror or exc}") from None
        self.path = os.path.join(folder, filename)
        self.folder = folder
        self.clock = clock
        self.lease_seconds = float(lease_seconds)
        self.retention_days = float(retention_days)
        self.busy_timeout = float(busy_timeout)
        self.host = socket.gethostname()
        token = os.urandom(8).hex()  # as secrets.token_hex, without its hmac imports
        self.owner = f"{self.host}:{os.getpid()}:{token}"
        self._owner_lock = owners.OwnerLock(folder, token)
        self._db = SqliteFile(self.path, what="the queue database", error=QueueError, held="queued",
                              busy_timeout=busy_timeout, synchronous=synchronous)
        self.damage: Optional[DamageReport] = None  # what happened to a damaged file, if one was
        self._open()

    @property
    def moved_aside(self) -> Optional[str]:
        """Where a damaged file went at this open, if one did."""
        return self.damage.moved_to if self.damage else None

    def damage_reports(self) -> List[DamageReport]:
        """Reports of damaged queue files moved aside and still kept in the folder, oldest first."""
        return salvage.reports(self.folder, os.path.basename(self.path))

    # -- opening -------------------------------------------------------
    def _open(self) -> None:
        alive, gone = owners.survey(self.folder)
        self.damage = open_queue(self._db, unclean=gone > 0, check_wal=alive == 0, now=self.clock(),
                                 probe=f"SELECT {_COLUMNS} FROM {TABLE} LIMIT 0")
        self._owner_lock.hold()  # for our lifetime: see .owners
        try:
            self.recover_stale()
            self.prune()
        except BaseException:
            self._db.close()
            raise

    # -- plumbing --------------------------------------------------------
    @staticmethod
    def _expand(sql: str, params: dict):
        """``IN :ids`` with a list → ``IN (:ids0, :ids1, …)`` (sqlite3 binds scalars only)."""
        ids = params.pop("ids", None)
        if ids is None:
            return sql, params
        names = [f"ids{n}" for n in range(len(ids))] or ["ids_none"]
        params.update(zip(names, ids))
        if not ids:
            params["ids_none"] = None
        return sql.replace(":ids", "(" + ", ".join(":" + n for n in names) + ")"), params

    @contextmanager
    def _tx(self, action: str, write: bool = True):
        """One transaction (see :meth:`SqliteFile.tx`); yields ``q(sql, **params)``.

        Statements go straight to a sqlite3 connection (SQLAlchemy's per-statement
        work would triple the enqueue cost).
        """
        with self._db.tx(action, write) as con:
            yield lambda sql, **params: con.execute(*self._expand(sql, params))

    # -- writing changes -------------------------------------------------
    def enqueue_change(self, change: Change) -> int:
        """Store ``change`` (coalescing, see module docstring); durable when it returns. Returns the row id."""
        now = self.clock()
        values = to_values(change, now)
        with self._tx("queue a change") as q:
            return coalesce.enqueue(q, change.change_type, values, now)

    def import_once(self, token: str, changes: Iterable[Change]) -> bool:
        """Queue ``changes`` in one transaction, unless ``token`` was imported before.

        For files of older versions (their journal): killed at any point, a
        start imports each file's changes exactly once. False: already imported.
        """
        now = self.clock()
        rows = [(c.change_type, to_values(c, now)) for c in changes]
        with self._tx("import changes of an older version") as q:
            if q("SELECT 1 FROM legacy_imports WHERE token = :t", t=token).fetchone() is not None:
                return False
            for change_type, values in rows:
                coalesce.enqueue(q, change_type, values, now)
            q("INSERT INTO legacy_imports (token, imported_at) VALUES (:t, :now)", t=token, now=now)
        return True

    def resolve_item(self, row_id: int, item_id: str) -> int:
        """The server's item for this row's media is known: write it into the row and into
        every open row of the same (server, media, user) still waiting for it. Returns how many."""
        now = self.clock()
        with self._tx("record the identified item") as q:
            me = q(f"SELECT source_id, media_key, user_id FROM {TABLE} WHERE id = :id", id=row_id).fetchone()
            if me is None:
                return 0
            return q(f"UPDATE {TABLE} SET media_item_id = :item, updated_at = :now, "
                     "attempt_count = 0 "
                     "WHERE source_id = :s AND media_key = :k AND user_id = :u AND media_item_id IS NULL "
                     "AND status IN ('pending', 'syncing', 'failed')",
                     item=str(item_id), now=now, s=me["source_id"], k=me["media_key"], u=me["user_id"]).rowcount

    def forget_identified(self, source_id: str, before: float, why: str) -> Tuple[int, int]:
        """Another server answers at ``source_id``'s address now: its item ids mean other items.
        Open rows not yet sent that were identified there wait to be identified again (by their
        file or provider ids); rows recorded before ``before`` from a stream URL of the old server,
        or with nothing to identify them by, fail with ``why``. Rows in flight or in doubt are left
        to their sender. Returns (identified again, failed)."""
        url = "(CAST(media_path AS TEXT) LIKE 'http://%' OR CAST(media_path AS TEXT) LIKE 'https://%')"
        nothing = "(COALESCE(CAST(media_path AS TEXT), '') = '' AND COALESCE(media_provider_ids, '{}') = '{}')"
        now = self.clock()
        with self._tx("forget items of a replaced server") as q:
            failed = q(f"UPDATE {TABLE} SET status = 'failed', error_message = :why, updated_at = :now "
                       f"WHERE source_id = :s AND status = 'pending' AND sent_at IS NULL AND created_at <= :before "
                       f"AND ({url} OR {nothing})", s=source_id, why=why, now=now, before=before).rowcount
            again = q(f"UPDATE {TABLE} SET media_item_id = NULL, next_attempt_at = 0, updated_at = :now "
                      f"WHERE source_id = :s AND status IN ('pending', 'failed') AND sent_at IS NULL "
                      f"AND media_item_id IS NOT NULL AND NOT ({url} OR {nothing})", s=source_id, now=now).rowcount
        return again, failed

    def make_unresolved_due(self, source_id: str) -> int:
        """The server's index was refreshed: rows still waiting to identify are due at once."""
        with self._tx("wake changes waiting to identify") as q:
            return q(f"UPDATE {TABLE} SET next_attempt_at = 0 WHERE source_id = :s AND status = 'pending' "
                     "AND media_item_id IS NULL AND next_attempt_at > 0", s=source_id).rowcount

    def close(self) -> None:
        if self._owner_lock.held:
            try:
                with self._tx("close the queue", write=False) as q:
                    holding = q(f"SELECT COUNT(*) FROM {TABLE} WHERE status = 'syncing' "
                                "AND claim_owner = :owner", owner=self.owner).fetchone()[0]
            except QueueError:
                holding = 1
            if not holding:  # else keep the lock to our death: a send may still be in flight
                self._owner_lock.release()
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"SyncQueue({self.path!r})"
