"""Coalescing rules: what a new change does to the open rows of its key.

A key is (source_id, media_item_id, user_id). The server must end in the state
the viewer last left it. A mark_watched or mark_unwatched sets the whole state
(played flag, resume point cleared), so it makes every earlier row of the key
pointless; a progress_update only moves the resume point, so it makes earlier
progress pointless but must be applied *after* an earlier watched/unwatched
(rewatching). Hence a key never needs more than two pending rows:
``[watched|unwatched] [progress]``.

Pure functions over lightweight rows; the queue runs them inside its
BEGIN IMMEDIATE transaction.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

from ..changes import APPLIED, FAILED, PENDING, PROGRESS, SYNCED, SYNCING


@dataclass(frozen=True)
class KeyRow:
    """The part of a queue row the rules look at."""

    id: int
    change_type: str
    status: str
    resolution: Optional[str] = None


@dataclass
class Plan:
    """What to do: update one row in place, or insert; and which rows to close."""

    update_id: Optional[int] = None          # put the new change into this pending row
    insert: bool = False                     # or add a new pending row after the others
    close: List[Tuple[int, str]] = field(default_factory=list)  # (row id, why), as superseded


def _why(change_type: str) -> str:
    return f"superseded by a later {change_type}"


def plan_enqueue(rows: Sequence[KeyRow], change_type: str) -> Plan:
    """Rows: the key's pending, syncing and failed rows, ordered by id."""
    rows = sorted(rows, key=lambda r: r.id)
    plan = Plan()
    in_flight = [r.id for r in rows if r.status == SYNCING]
    last_in_flight = max(in_flight) if in_flight else 0
    if change_type == PROGRESS:
        # A newer resume point makes older, unsent ones pointless, wherever they sit.
        open_rows = [r for r in rows if r.status in (PENDING, SYNCING)]
        last = open_rows[-1] if open_rows else None
        for r in rows:
            if r.change_type != PROGRESS or r.status == SYNCING:
                continue
            if last is not None and r.id == last.id and r.status == PENDING:
                plan.update_id = r.id
            else:
                plan.close.append((r.id, _why(change_type)))
        plan.insert = plan.update_id is None
        return plan
    # watched / unwatched: the new state replaces everything not yet sent.
    for r in rows:
        if r.status == SYNCING:
            continue
        same = r.change_type == change_type and r.status == PENDING and r.id > last_in_flight
        if same and plan.update_id is None:
            plan.update_id = r.id          # the server is told once
        else:
            plan.close.append((r.id, _why(change_type)))
    plan.insert = plan.update_id is None
    return plan


def _counting_after(row: KeyRow, later: Sequence[KeyRow]) -> List[KeyRow]:
    """Rows of the key after ``row`` that stand: open, failed, or applied (not superseded)."""
    return [r for r in later if r.id > row.id and (
        r.status in (PENDING, SYNCING, FAILED) or (r.status == SYNCED and r.resolution == APPLIED))]


def superseded_by_later(row: KeyRow, later: Sequence[KeyRow]) -> bool:
    """Would sending ``row`` now be pointless or harmful given the key's later rows?

    ``later``: rows of the key with a higher id that are open, failed or applied.
    Any later watched/unwatched overrides it; a later progress overrides an
    earlier progress.
    """
    return any(r.change_type != PROGRESS or row.change_type == PROGRESS for r in _counting_after(row, later))


def progress_to_resend(row: KeyRow, later: Sequence[KeyRow]) -> Optional[int]:
    """A watched/unwatched ``row`` going back to pending after a later progress of its key
    was already sent (or is being sent): that progress must be sent again after ``row``,
    which resets the resume point. Returns the id of the progress row to copy, or None.
    """
    if row.change_type == PROGRESS:
        return None
    progress = [r for r in _counting_after(row, later) if r.change_type == PROGRESS]
    if not progress:
        return None
    latest = max(progress, key=lambda r: r.id)
    return latest.id if latest.status in (SYNCING, SYNCED) else None
