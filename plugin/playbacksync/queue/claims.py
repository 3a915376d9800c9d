"""Claims, leases and outcomes: how a sender takes rows, keeps them and closes them.

A mixin of :class:`~.store.SyncQueue` (it uses the queue's ``_tx``, ``clock``,
``owner`` and ``lease_seconds``). ``claim`` takes due pending rows of one
server, oldest first, at most one per key and only the key's oldest pending
row, skipping keys with a row in flight: per item the server sees changes in
the order they were made. Each claim records an owner (host:pid:token) and a
lease; ``extend_lease`` renews a long send, ``begin_send`` records a send
before it goes out (worker.py: exactly once). The outcome methods
(mark_synced from syncing, mark_retry, mark_failed, release) act only on rows
this queue claimed and return False otherwise, so a claim taken over after its
lease ran out is never closed twice. ``attempt_count`` counts finished
attempts (mark_synced or mark_failed of a claimed row, mark_retry with
count_attempt); release and recovery do not count. ``next_attempt_at`` 0
means due at once.
"""
from __future__ import annotations

import logging
from typing import Iterable, List, Optional

from ..changes import APPLIED, QueuedChange
from . import coalesce
from .rows import COLUMNS as _COLUMNS, TABLE, to_change as _to_change

log = logging.getLogger(__name__)


class QueueClaims:
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
