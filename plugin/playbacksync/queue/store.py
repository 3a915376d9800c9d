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
    move aside), :mod:`.rules` (the coalescing rule), :mod:`.coalesce` (applying
    it in SQL), :mod:`.rows` (row ↔ change), this module (queue operations).
"""
from __future__ import annotations

import logging
import os
import socket
import time
from contextlib import contextmanager
from typing import Dict, Iterable, List, Optional, Tuple

from ..changes import APPLIED, Change, QueuedChange
from ..sqlite_file import SqliteFile, StorageError
from . import owners
from .opening import open_queue
from .reads import QueueReads
from . import coalesce, salvage
from .rows import COLUMNS as _COLUMNS, TABLE, to_change as _to_change, to_values
from .salvage import DamageReport

log = logging.getLogger(__name__)

DAY = 86400.0



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


class SyncQueue(QueueReads):
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

    # -- claiming --------------------------------------------------------
    def claim(self, source_id: str, *, limit: int = 100, due_only: bool = True) -> List[QueuedChange]:
        """Atomically move due pending rows of one server to syncing; ordered by id.

        Per media (same reference, or same resolved item) only its oldest pending
        row, and none while it has a row in flight.
        ``due_only=False`` ("sync now") also takes rows still waiting out a backoff,
        under the same per-key rule.
        """
        now = self.clock()
        due = " AND c.next_attempt_at <= :now" if due_only else ""
        # A row whose earlier send may still land waits for that window even on "sync now";
        # it is its key's oldest open row, so the key's later rows wait behind it.
        # The key rule is tested once per key column, each through its own index
        # (ix_queue_media_key, ix_queue_key): one test with OR scanned every row of
        # the server per candidate, and a claim on a 5,000-row backlog took 5 s.
        ahead = ("o.source_id = c.source_id AND o.user_id = c.user_id AND o.status IN ('syncing', 'pending') "
                 "AND (o.status = 'syncing' OR o.id < c.id)")
        with self._tx("claim changes") as q:
            ids = [r[0] for r in q(
                f"SELECT c.id FROM {TABLE} c WHERE c.source_id = :s AND c.status = 'pending' "
                f"AND c.unsure_until <= :now{due}"
                f" AND NOT EXISTS (SELECT 1 FROM {TABLE} o WHERE o.media_key = c.media_key AND {ahead})"
                f" AND (c.media_item_id IS NULL OR NOT EXISTS ("
                f"SELECT 1 FROM {TABLE} o WHERE o.media_item_id = c.media_item_id AND {ahead}))"
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

    def begin_send(self, row_id: int, unsure_for: float, seen_play_count: Optional[int] = None) -> bool:
        """Record, durably and before the request, that a write of our claimed row goes out now
        and may land until ``unsure_for`` seconds from now; renews the lease. False (send
        nothing) when the claim is no longer ours."""
        now = self.clock()
        with self._tx("record a send") as q:
            return bool(q(f"UPDATE {TABLE} SET sent_at = :now, unsure_until = :until, seen_play_count = :seen, "
                          "lease_expires_at = :lease WHERE id = :id AND status = 'syncing' AND claim_owner = :owner",
                          id=row_id, now=now, until=now + max(0.0, float(unsure_for)), seen=seen_play_count,
                          lease=now + self.lease_seconds, owner=self.owner).rowcount)

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

    def mark_retry(self, row_id: int, error: str, next_attempt_at: float, *, count_attempt: bool = True,
                   in_doubt: bool = False, unresolve: bool = False) -> bool:
        """syncing → pending, not to be sent before ``next_attempt_at``; False if not our claim.

        ``in_doubt``: our write may still land (no answer came); the row keeps its
        send time and waits out ``unsure_until``. Otherwise a recorded send is settled.
        ``unresolve``: the item it was identified as is gone: it waits to be identified again.
        """
        now = self.clock()
        keep = "" if in_doubt else ", sent_at = NULL, unsure_until = 0, seen_play_count = NULL"
        keep += ", media_item_id = NULL" if unresolve else ""
        with self._tx("schedule a retry") as q:
            n = q(f"UPDATE {TABLE} SET status = 'pending', error_message = :err, next_attempt_at = :at, "
                  "attempt_count = attempt_count + :inc, updated_at = :now, claim_owner = NULL, "
                  f"lease_expires_at = NULL{keep} WHERE id = :id AND status = 'syncing' AND claim_owner = :owner",
                  id=row_id, err=error, at=float(next_attempt_at), inc=1 if count_attempt else 0,
                  now=now, owner=self.owner).rowcount
            if n:
                coalesce.settle(q, [row_id], now)
        return bool(n)

    def mark_failed(self, row_id: int, error: str, *, in_doubt: bool = False) -> bool:
        """syncing (our claim) or pending → failed: kept, visible, retryable.

        ``in_doubt``: its last write got no answer and may still land, so a retry still waits out
        ``unsure_until``; otherwise (the server answered, or nothing was sent) the send is settled."""
        now = self.clock()
        keep = "" if in_doubt else ", sent_at = NULL, unsure_until = 0, seen_play_count = NULL"
        with self._tx("record a failed change") as q:
            n = q(f"UPDATE {TABLE} SET attempt_count = attempt_count + (status = 'syncing'), "
                  f"status = 'failed', error_message = :err, updated_at = :now, claim_owner = NULL, "
                  f"lease_expires_at = NULL{keep} WHERE id = :id AND ((status = 'syncing' AND claim_owner = :owner) "
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
                coalesce.settle(q, back, now)
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
            closed = coalesce.settle(q, back, now)
        return len(back) - closed

    def clear_failed(self, source_id: Optional[str] = None, ids: Optional[Iterable[int]] = None) -> int:
        """Delete failed rows (the viewer gave up on them), only ``ids`` when given. Returns how many."""
        sql = f"DELETE FROM {TABLE} WHERE status = 'failed'"
        params: dict = {}
        if source_id is not None:
            sql += " AND source_id = :s"
            params["s"] = source_id
        if ids is not None:
            sql += " AND id IN :ids"
            params["ids"] = [int(i) for i in ids]
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
                coalesce.settle(q, stale, now)
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
