"""Reading the queue: rows for the worker's callers and the status views (no writes here).

A mixin of :class:`~.store.SyncQueue`: it uses the queue's ``_tx`` (one read
transaction per call, a consistent snapshot) and ``clock``.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional

from ..changes import FAILED, STATUSES, QueuedChange
from .rows import COLUMNS as _COLUMNS, TABLE, narrowed, to_change as _to_change


class QueueReads:
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
        sql, params = narrowed(f"SELECT {_COLUMNS} FROM {TABLE} WHERE 1 = 1", source_id, "status", statuses)
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
