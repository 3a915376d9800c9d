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

Coalescing (per key = server, item, user; only rows not yet sent are touched)
    * A new ``progress_update`` updates in place the key's latest pending row if
      that row is a progress_update (position, duration, created_at,
      updated_at); otherwise it is added after the key's rows. Older pending
      or failed progress rows of the key are closed as superseded.
    * A new ``mark_watched``/``mark_unwatched`` closes as superseded every
      pending and failed row of the key (progress or the opposite state): the
      new state replaces the server's whole state. A pending row of the same
      kind after anything in flight absorbs it (the server is told once).
    * A row in ``syncing`` is in flight and never touched: a change made
      meanwhile becomes a new pending row, applied after it.
    * So a key holds at most ``[watched|unwatched] [progress]`` pending: a
      rewatch's progress is applied after the watched mark; a later unwatched
      cancels a pending watched and the reverse.
    * When a row goes back to pending (retry, release, crash recovery,
      retry_failed) and a later row of its key already overrides it, it is
      closed as superseded instead of being sent out of order; if it is a
      watched/unwatched mark and a later progress of its key already went out,
      that progress is queued again after it (the mark resets the resume point).
    Superseded rows are closed (status ``synced``, resolution ``superseded``,
    ``error_message`` says why), never sent, and pruned like synced rows.

Claims and recovery
    ``claim`` takes due pending rows of one server, oldest first, at most one
    per key and only the key's oldest pending row, skipping keys with a row in
    flight: per item the server sees changes in the order they were made.
    Each claim records an owner (host:pid:token) and a lease; from its first
    claim the queue holds an exclusive lock on ``queue-owners/<token>.lock``
    in the data dir, which the kernel drops when the process dies
    (:mod:`.owners`). Rows left in ``syncing`` go back to pending (at open and
    in ``recover_stale``) when the owner's lock is free (it is dead, whatever
    PID namespace it ran in and whoever has its PID now) or the lease has
    expired; a live process's claims within their lease are left alone. Only
    an owner without a lock file (an older version) is judged by host:pid. ``extend_lease``
    renews a long send. The outcome methods (mark_synced from syncing,
    mark_retry, mark_failed, release) act only on rows this queue claimed and
    return False otherwise, so a claim taken over after its lease ran out is
    never closed twice. ``attempt_count`` counts finished attempts (mark_synced
    or mark_failed of a claimed row, mark_retry with count_attempt); release
    and recovery do not count. ``next_attempt_at`` 0 means due at once.

Retention
    Synced rows (applied or superseded) are deleted ``retention_days`` after
    they were closed (``prune``, also run at open). Failed rows stay until
    ``retry_failed`` or ``clear_failed``.

Damaged files
    A file SQLite reports as corrupt or not a database is renamed
    ``queue.sqlite.corrupt-<UTC time>`` (with its -wal/-shm), logged, and a
    fresh queue started (:mod:`.opening`). A locked file, a read-only folder
    or a full disk raise :class:`QueueError` (messages: :mod:`playbacksync.sqlite_file`).

Modules
    :mod:`playbacksync.sqlite_file` (connections, transactions, error
    messages, shared with the item index), :mod:`.opening` (check, migrate,
    move aside), :mod:`.rules` (coalescing), this module (queue operations).
"""
from __future__ import annotations

import logging
import math
import os
import socket
import time
from contextlib import contextmanager
from typing import Dict, Iterable, List, Optional

from ..changes import APPLIED, FAILED, PENDING, PROGRESS, STATUSES, Change, QueuedChange
from ..sqlite_file import SqliteFile, StorageError
from . import owners
from .opening import open_queue
from . import salvage
from .salvage import DamageReport
from .rules import KeyRow, plan_enqueue, progress_to_resend, superseded_by_later

log = logging.getLogger(__name__)

TABLE = "playback_sync_queue"
DAY = 86400.0

_COLUMNS = ("id, media_item_id, source_id, user_id, change_type, position_ms, duration_ms, completed, "
            "created_at, status, attempt_count, last_attempt_at, next_attempt_at, updated_at, "
            "error_message, resolution, claim_owner, lease_expires_at")


class QueueError(StorageError):
    """The queue's storage cannot be used; the message says which file and why."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, someone else's; otherwise assume alive
        return True
    return True


def _to_change(row) -> QueuedChange:
    return QueuedChange(
        media_item_id=row["media_item_id"], source_id=row["source_id"], user_id=row["user_id"],
        change_type=row["change_type"], position_ms=row["position_ms"],
        duration_ms=row["duration_ms"], completed=bool(row["completed"]),
        created_at=row["created_at"], id=row["id"], status=row["status"],
        attempt_count=row["attempt_count"], last_attempt_at=row["last_attempt_at"],
        next_attempt_at=row["next_attempt_at"], updated_at=row["updated_at"],
        error_message=row["error_message"], resolution=row["resolution"])


def _check_change(change: Change) -> None:
    if not isinstance(change, Change):
        raise TypeError(f"enqueue_change needs a Change, not {type(change).__name__}")
    for name in ("media_item_id", "source_id"):
        value = getattr(change, name)
        if not isinstance(value, str) or not value:
            raise ValueError(f"change.{name} must be a non-empty string, got {value!r}")
    if not isinstance(change.user_id, str):
        raise ValueError(f"change.user_id must be a string, got {change.user_id!r}")
    for name in ("position_ms", "duration_ms"):
        value = getattr(change, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"change.{name} must be a whole number of ms >= 0 or None, got {value!r}")
    if change.change_type == PROGRESS and change.position_ms is None:
        raise ValueError("a progress_update needs position_ms")
    at = change.created_at
    if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at) or at < 0:
        raise ValueError(f"change.created_at must be epoch seconds (0 = now), got {at!r}")


class SyncQueue:
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
        _check_change(change)
        now = self.clock()
        created = change.created_at or now
        completed = bool(change.completed) if change.change_type == PROGRESS else change.change_type == "mark_watched"
        with self._tx("queue a change") as q:
            rows = [KeyRow(*r) for r in q(
                f"SELECT id, change_type, status, resolution FROM {TABLE} WHERE source_id = :s "
                "AND media_item_id = :m AND user_id = :u AND status IN ('pending', 'syncing', 'failed') "
                "ORDER BY id", s=change.source_id, m=change.media_item_id, u=change.user_id)]
            plan = plan_enqueue(rows, change.change_type)
            for row_id, why in plan.close:
                self._close_superseded(q, row_id, why, now)
            values = dict(p=change.position_ms, d=change.duration_ms, c=completed, ca=created, now=now)
            if plan.update_id is not None:
                q(f"UPDATE {TABLE} SET position_ms = :p, duration_ms = :d, completed = :c, created_at = :ca, "
                  "updated_at = :now WHERE id = :id", id=plan.update_id, **values)
                return plan.update_id
            return q(f"INSERT INTO {TABLE} (media_item_id, source_id, user_id, change_type, position_ms, "
                     "duration_ms, completed, created_at, updated_at, status, attempt_count, next_attempt_at) "
                     "VALUES (:m, :s, :u, :t, :p, :d, :c, :ca, :now, 'pending', 0, 0)",
                     m=change.media_item_id, s=change.source_id, u=change.user_id,
                     t=change.change_type, **values).lastrowid

    @staticmethod
    def _close_superseded(q, row_id: int, why: str, now: float) -> None:
        q(f"UPDATE {TABLE} SET status = 'synced', resolution = 'superseded', error_message = :why, "
          "updated_at = :now, claim_owner = NULL, lease_expires_at = NULL WHERE id = :id",
          id=row_id, why=why, now=now)

    def _settle(self, q, row_ids: Iterable[int], now: float) -> int:
        """Close rows just returned to pending that a later row of their key overrides."""
        closed = 0
        for row_id in row_ids:
            me = q(f"SELECT id, change_type, status, resolution, source_id, media_item_id, user_id "
                   f"FROM {TABLE} WHERE id = :id", id=row_id).fetchone()
            if me is None or me["status"] != PENDING:
                continue
            later = [KeyRow(*r) for r in q(
                f"SELECT id, change_type, status, resolution FROM {TABLE} WHERE source_id = :s "
                "AND media_item_id = :m AND user_id = :u AND id > :id",
                s=me["source_id"], m=me["media_item_id"], u=me["user_id"], id=row_id)]
            row = KeyRow(me["id"], me["change_type"], me["status"], me["resolution"])
            if superseded_by_later(row, later):
                newer = max(r.id for r in later)
                self._close_superseded(q, row_id, f"superseded by a later change (row {newer}) "
                                       "before it could be sent", now)
                closed += 1
                continue
            resend = progress_to_resend(row, later)
            if resend is not None:
                # A rewatch's position already went out before this watched/unwatched mark,
                # which resets it on the server: send that position again after the mark.
                q(f"INSERT INTO {TABLE} (media_item_id, source_id, user_id, change_type, position_ms, "
                  "duration_ms, completed, created_at, updated_at, status, attempt_count, next_attempt_at) "
                  "SELECT media_item_id, source_id, user_id, change_type, position_ms, duration_ms, completed, "
                  f"created_at, :now, 'pending', 0, 0 FROM {TABLE} WHERE id = :id", id=resend, now=now)
        return closed

    # -- reading ---------------------------------------------------------
    def get_pending(self, source_id: Optional[str] = None, *, due_only: bool = True,
                    limit: Optional[int] = None) -> List[QueuedChange]:
        """Pending rows (due now unless ``due_only=False``), ordered by id."""
        sql = f"SELECT {_COLUMNS} FROM {TABLE} WHERE status = 'pending'"
        params = {}
        if source_id is not None:
            sql += " AND source_id = :s"
            params["s"] = source_id
        if due_only:
            sql += " AND next_attempt_at <= :now"
            params["now"] = self.clock()
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT :lim"
            params["lim"] = int(limit)
        with self._tx("read pending changes", write=False) as q:
            return [_to_change(r) for r in q(sql, **params)]

    def get(self, row_id: int) -> Optional[QueuedChange]:
        """One row by id, whatever its status."""
        with self._tx("read a change", write=False) as q:
            row = q(f"SELECT {_COLUMNS} FROM {TABLE} WHERE id = :id", id=row_id).fetchone()
        return _to_change(row) if row is not None else None

    def rows(self, source_id: Optional[str] = None, statuses: Optional[Iterable[str]] = None) -> List[QueuedChange]:
        """All rows (optionally of one server / some statuses), ordered by id; for status views."""
        sql = f"SELECT {_COLUMNS} FROM {TABLE} WHERE 1 = 1"
        params: dict = {}
        if source_id is not None:
            sql += " AND source_id = :s"
            params["s"] = source_id
        if statuses is not None:
            sql += " AND status IN :ids"
            params["ids"] = list(statuses)
        with self._tx("read changes", write=False) as q:
            return [_to_change(r) for r in q(sql + " ORDER BY id", **params)]

    def get_failed_retryable(self, source_id: Optional[str] = None) -> List[QueuedChange]:
        """Failed rows (kept for the viewer to retry), ordered by id."""
        return self.rows(source_id, (FAILED,))

    def settings(self) -> Dict[str, object]:
        """The durability settings in force on a queue connection (journal, synchronous, busy timeout)."""
        with self._tx("read settings", write=False) as q:
            journal = q("PRAGMA journal_mode").fetchone()[0]
            sync = q("PRAGMA synchronous").fetchone()[0]
            busy = q("PRAGMA busy_timeout").fetchone()[0]
        names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
        return {"journal_mode": journal, "synchronous": names.get(sync, sync), "busy_timeout_ms": busy}

    def counts(self) -> Dict[str, Dict[str, int]]:
        """{source_id: {status: n}} with every status present."""
        out: Dict[str, Dict[str, int]] = {}
        with self._tx("count changes", write=False) as q:
            for source, status, n in q(f"SELECT source_id, status, COUNT(*) FROM {TABLE} "
                                       "GROUP BY source_id, status"):
                out.setdefault(source, {s: 0 for s in STATUSES})[status] = n
        return out

    # -- claiming --------------------------------------------------------
    def claim(self, source_id: str, *, limit: int = 100, due_only: bool = True) -> List[QueuedChange]:
        """Atomically move due pending rows of one server to syncing; ordered by id.

        Per key only its oldest pending row, and none while the key has a row in flight.
        ``due_only=False`` ("sync now") also takes rows still waiting out a backoff,
        under the same per-key rule.
        """
        now = self.clock()
        due = " AND c.next_attempt_at <= :now" if due_only else ""
        with self._tx("claim changes") as q:
            ids = [r[0] for r in q(
                f"SELECT c.id FROM {TABLE} c WHERE c.source_id = :s AND c.status = 'pending'"
                f"{due} AND NOT EXISTS ("
                f" SELECT 1 FROM {TABLE} o WHERE o.source_id = c.source_id"
                "  AND o.media_item_id = c.media_item_id AND o.user_id = c.user_id"
                "  AND (o.status = 'syncing' OR (o.status = 'pending' AND o.id < c.id)))"
                " ORDER BY c.id LIMIT :lim", s=source_id, now=now, lim=int(limit))]
            return self._take(q, ids, now)

    def _take(self, q, ids: List[int], now: float) -> List[QueuedChange]:
        """pending → syncing for ``ids``, inside the caller's BEGIN IMMEDIATE (so nobody
        writes between the choice and the update); the rows taken, by id."""
        if not ids:
            return []
        q(f"UPDATE {TABLE} SET status = 'syncing', claim_owner = :owner, lease_expires_at = :lease, "
          "last_attempt_at = :now, updated_at = :now WHERE id IN :ids AND status = 'pending'",
          ids=ids, owner=self.owner, lease=now + self.lease_seconds, now=now)
        return [_to_change(r) for r in q(f"SELECT {_COLUMNS} FROM {TABLE} WHERE id IN :ids "
                                         "AND status = 'syncing' AND claim_owner = :owner ORDER BY id",
                                         ids=ids, owner=self.owner)]

    def mark_syncing(self, ids: Iterable[int]) -> List[QueuedChange]:
        """Atomically claim those of ``ids`` that are still pending; ordered by id."""
        ids = [int(i) for i in ids]
        if not ids:
            return []
        now = self.clock()
        with self._tx("claim changes") as q:
            pending = [r[0] for r in q(f"SELECT id FROM {TABLE} WHERE id IN :ids AND status = 'pending'",
                                       ids=ids)]
            return self._take(q, pending, now)

    def extend_lease(self, ids: Iterable[int]) -> int:
        """Renew this queue's claim on rows it still holds (a long send)."""
        ids = [int(i) for i in ids]
        if not ids:
            return 0
        now = self.clock()
        with self._tx("extend a claim") as q:
            return q(f"UPDATE {TABLE} SET lease_expires_at = :lease WHERE id IN :ids AND status = 'syncing' "
                     "AND claim_owner = :owner", ids=ids, owner=self.owner,
                     lease=now + self.lease_seconds).rowcount

    # -- outcomes --------------------------------------------------------
    def mark_synced(self, row_id: int, *, resolution: str = APPLIED, note: Optional[str] = None) -> bool:
        """Close a row: sent (``applied``) or not needed (``superseded``, ``note`` says why).

        From syncing (our claim) or, to close it unsent, from pending or failed.
        Returns False if the row was not in such a state (e.g. another process holds it now).
        """
        now = self.clock()
        with self._tx("record a synced change") as q:
            n = q(f"UPDATE {TABLE} SET attempt_count = attempt_count + (status = 'syncing'), "
                  "status = 'synced', resolution = :res, error_message = :note, updated_at = :now, "
                  "claim_owner = NULL, lease_expires_at = NULL WHERE id = :id AND ("
                  "(status = 'syncing' AND claim_owner = :owner) OR status IN ('pending', 'failed'))",
                  id=row_id, res=resolution, note=note, now=now, owner=self.owner).rowcount
        if not n:
            log.warning("queue row %s was not ours to close as %s", row_id, resolution)
        return bool(n)

    def mark_retry(self, row_id: int, error: str, next_attempt_at: float, *, count_attempt: bool = True) -> bool:
        """syncing → pending, not to be sent before ``next_attempt_at``; False if not our claim."""
        now = self.clock()
        with self._tx("schedule a retry") as q:
            n = q(f"UPDATE {TABLE} SET status = 'pending', error_message = :err, next_attempt_at = :at, "
                  "attempt_count = attempt_count + :inc, updated_at = :now, claim_owner = NULL, "
                  "lease_expires_at = NULL WHERE id = :id AND status = 'syncing' AND claim_owner = :owner",
                  id=row_id, err=error, at=float(next_attempt_at), inc=1 if count_attempt else 0,
                  now=now, owner=self.owner).rowcount
            if n:
                self._settle(q, [row_id], now)
        return bool(n)

    def mark_failed(self, row_id: int, error: str) -> bool:
        """syncing (our claim) or pending → failed: kept, visible, retryable."""
        now = self.clock()
        with self._tx("record a failed change") as q:
            n = q(f"UPDATE {TABLE} SET attempt_count = attempt_count + (status = 'syncing'), "
                  "status = 'failed', error_message = :err, updated_at = :now, claim_owner = NULL, "
                  "lease_expires_at = NULL WHERE id = :id AND ((status = 'syncing' AND claim_owner = :owner) "
                  "OR status = 'pending')", id=row_id, err=error, now=now, owner=self.owner).rowcount
        return bool(n)

    def release(self, ids: Iterable[int]) -> int:
        """Our syncing rows → pending, due now, without counting an attempt (e.g. shutdown)."""
        ids = [int(i) for i in ids]
        if not ids:
            return 0
        now = self.clock()
        with self._tx("release claimed changes") as q:
            back = [r[0] for r in q(f"SELECT id FROM {TABLE} WHERE id IN :ids AND status = 'syncing' "
                                    "AND claim_owner = :owner ORDER BY id", ids=ids, owner=self.owner)]
            if back:
                q(f"UPDATE {TABLE} SET status = 'pending', updated_at = :now, claim_owner = NULL, "
                  "lease_expires_at = NULL WHERE id IN :ids", ids=back, now=now)
                self._settle(q, back, now)
        return len(back)

    def retry_failed(self, source_id: Optional[str] = None) -> int:
        """failed → pending, attempts reset, due now. Returns how many went back to pending."""
        now = self.clock()
        sql = f"SELECT id FROM {TABLE} WHERE status = 'failed'"
        params = {}
        if source_id is not None:
            sql += " AND source_id = :s"
            params["s"] = source_id
        with self._tx("retry failed changes") as q:
            back = [r[0] for r in q(sql + " ORDER BY id", **params)]
            if not back:
                return 0
            q(f"UPDATE {TABLE} SET status = 'pending', attempt_count = 0, next_attempt_at = 0, "
              "updated_at = :now WHERE id IN :ids", ids=back, now=now)
            closed = self._settle(q, back, now)
        return len(back) - closed

    def clear_failed(self, source_id: Optional[str] = None) -> int:
        """Delete failed rows (the viewer gave up on them). Returns how many."""
        sql = f"DELETE FROM {TABLE} WHERE status = 'failed'"
        params = {}
        if source_id is not None:
            sql += " AND source_id = :s"
            params["s"] = source_id
        with self._tx("clear failed changes") as q:
            return q(sql, **params).rowcount

    # -- housekeeping ----------------------------------------------------
    def _stale(self, owner: Optional[str], lease: Optional[float], now: float, gone: Dict[str, bool]) -> bool:
        """Whether a claim can be taken back: no owner or lease, an expired lease, or a dead owner.

        The owner is dead when its lock file can be locked (see :mod:`.owners`);
        an owner without a lock file (older versions) is judged by host:pid.
        """
        if not owner or lease is None or lease <= now:
            return True
        host, _, rest = owner.partition(":")
        pid, _, token = rest.partition(":")
        if owner not in gone:
            verdict = owners.owner_gone(self.folder, token)
            if verdict is None:  # no lock file: host:pid decides, on this host only
                verdict = host == self.host and pid.isdigit() and not _pid_alive(int(pid))
            gone[owner] = verdict
        return gone[owner]

    def recover_stale(self) -> int:
        """Rows in syncing whose owner is provably dead or whose lease expired → pending."""
        now = self.clock()
        gone: Dict[str, bool] = {}
        with self._tx("recover interrupted changes") as q:
            stale = [r[0] for r in q(f"SELECT id, claim_owner, lease_expires_at FROM {TABLE} "
                                     "WHERE status = 'syncing' ORDER BY id")
                     if self._stale(r[1], r[2], now, gone)]
            if stale:
                q(f"UPDATE {TABLE} SET status = 'pending', updated_at = :now, claim_owner = NULL, "
                  "lease_expires_at = NULL WHERE id IN :ids", ids=stale, now=now)
                self._settle(q, stale, now)
            if os.path.isdir(os.path.join(self.folder, owners.FOLDER)):  # lock files of owners gone, holding nothing
                holding = {r[0].rpartition(":")[2] for r in q(
                    f"SELECT DISTINCT claim_owner FROM {TABLE} WHERE status = 'syncing' "
                    "AND claim_owner IS NOT NULL")}
                owners.sweep(self.folder, holding | {self.owner.rpartition(":")[2]})
        if stale:
            log.info("queue: %d interrupted change(s) back to pending", len(stale))
        return len(stale)

    def prune(self, now: Optional[float] = None) -> int:
        """Delete synced rows closed more than ``retention_days`` ago."""
        now = self.clock() if now is None else now
        with self._tx("prune synced changes") as q:
            return q(f"DELETE FROM {TABLE} WHERE status = 'synced' AND updated_at < :cut",
                     cut=now - self.retention_days * DAY).rowcount

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
