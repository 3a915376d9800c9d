"""Upkeep of the queue: failed rows (retry, clear), recovery of dead owners' claims, pruning.

A mixin of :class:`~.store.SyncQueue` (it uses the queue's ``_tx``, ``clock``,
``folder``, ``host`` and ``owner``). Rows left in ``syncing`` go back to
pending (at open, and from a running worker: ``SyncWorker.recover_claims``)
when the owner's lock is free (it is dead, whatever PID namespace it ran in and
whoever has its PID now; :mod:`.owners`) or the lease has expired; a live
process's claims within their lease are left alone. Only an owner without a
lock file (an older version) is judged by host:pid. Synced rows are deleted
``retention_days`` after they were closed; failed rows stay until
``retry_failed`` or ``clear_failed``.
"""
from __future__ import annotations

import logging
import os
from typing import Dict, Iterable, Optional

from . import coalesce, owners
from .rows import TABLE, narrowed

log = logging.getLogger(__name__)

DAY = 86400.0

def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, someone else's; otherwise assume alive
        return True
    return True


class QueueMaintenance:
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
        sql, params = narrowed(f"DELETE FROM {TABLE} WHERE status = 'failed'", source_id, "id",
                               None if ids is None else [int(i) for i in ids])
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
