"""Applying the coalescing rule (:mod:`.rules`) to the queue's rows, inside a write transaction.

Each function takes ``q`` (run one statement in the caller's BEGIN IMMEDIATE
transaction, see ``SyncQueue._tx``), so the read-then-write cannot interleave
with another thread or process.

Coalescing (per key = server, media, user; only rows not yet sent are touched)
    The media is the reference the change was recorded against (rows.py's
    ``media_key``: path as played + provider ids), so coalescing bounds the
    rows per (server, media) before and after the server's item is known.
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

A pending row whose last send may still land (``sent_at`` set; see the
worker's docstring) counts as in flight here: nothing absorbs, closes or
overtakes it until the worker has judged that send.
"""
from __future__ import annotations

from typing import Iterable, List

from ..changes import PENDING, SYNCING
from .rows import INSERT_COLUMNS, TABLE
from .rules import KeyRow, plan_enqueue, progress_to_resend, superseded_by_later


def enqueue(q, change_type: str, values: dict, now: float) -> int:
    """Apply a new change to its key's open rows (update one in place, or insert); its row id."""
    rows = key_rows(q, values["source_id"], values["media_key"], values["user_id"],
                          "AND status IN ('pending', 'syncing', 'failed')")
    plan = plan_enqueue(rows, change_type)
    for row_id, why in plan.close:
        close_superseded(q, row_id, why, now)
    if plan.update_id is not None:
        q(f"UPDATE {TABLE} SET position_ms = :position_ms, duration_ms = :duration_ms, "
          "completed = :completed, created_at = :created_at, updated_at = :now WHERE id = :id",
          id=plan.update_id, now=now, **{k: values[k] for k in
                                        ("position_ms", "duration_ms", "completed", "created_at")})
        return plan.update_id
    names = [n.strip() for n in INSERT_COLUMNS.split(",")]
    return q(f"INSERT INTO {TABLE} ({INSERT_COLUMNS}, updated_at, status, attempt_count, next_attempt_at) "
             f"VALUES ({', '.join(':' + n for n in names)}, :now, 'pending', 0, 0)",
             now=now, **values).lastrowid


def key_rows(q, source_id: str, key: str, user_id: str, where: str = "", **params) -> List[KeyRow]:
    """The rows of one (server, media, user) as the coalescing rules see them.

    A pending row whose last send may still land (``sent_at`` set) counts as
    in flight: nothing may absorb, close or overtake it until the worker knows.
    """
    return [KeyRow(r[0], r[1], SYNCING if (r[2] == PENDING and r[4] is not None) else r[2], r[3])
            for r in q(f"SELECT id, change_type, status, resolution, sent_at FROM {TABLE} "
                       f"WHERE source_id = :s AND media_key = :k AND user_id = :u {where} ORDER BY id",
                       s=source_id, k=key, u=user_id, **params)]


def close_superseded(q, row_id: int, why: str, now: float) -> None:
    q(f"UPDATE {TABLE} SET status = 'synced', resolution = 'superseded', error_message = :why, "
      "updated_at = :now, claim_owner = NULL, lease_expires_at = NULL WHERE id = :id",
      id=row_id, why=why, now=now)


def settle(q, row_ids: Iterable[int], now: float) -> int:
    """Close rows just returned to pending that a later row of their key overrides.

    A row whose send is in doubt is left for the worker (it checks the server
    once that send can no longer land; see worker.py).
    """
    closed = 0
    for row_id in row_ids:
        me = q(f"SELECT id, change_type, status, resolution, source_id, media_key, user_id, sent_at "
               f"FROM {TABLE} WHERE id = :id", id=row_id).fetchone()
        if me is None or me["status"] != PENDING or me["sent_at"] is not None:
            continue
        later = key_rows(q, me["source_id"], me["media_key"], me["user_id"], "AND id > :id", id=row_id)
        row = KeyRow(me["id"], me["change_type"], me["status"], me["resolution"])
        if superseded_by_later(row, later):
            newer = max(r.id for r in later)
            close_superseded(q, row_id, f"superseded by a later change (row {newer}) "
                                   "before it could be sent", now)
            closed += 1
            continue
        resend = progress_to_resend(row, later)
        if resend is not None:
            # A rewatch's position already went out before this watched/unwatched mark,
            # which resets it on the server: send that position again after the mark.
            q(f"INSERT INTO {TABLE} ({INSERT_COLUMNS}, updated_at, status, attempt_count, next_attempt_at) "
              f"SELECT {INSERT_COLUMNS}, :now, 'pending', 0, 0 FROM {TABLE} WHERE id = :id", id=resend, now=now)
    return closed
