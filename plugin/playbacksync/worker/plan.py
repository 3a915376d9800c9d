"""Pure decisions the worker makes about claimed rows: what to send, in which
order, what is pointless (dedup), what waited, and what the server overrides.
"""
from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

from ..backends.base import ItemState
from ..changes import PROGRESS, QueuedChange

ItemKey = Tuple[str, str]  # (media_item_id, user_id)


@dataclass
class Batch:
    """Claimed rows of one server, split into per-item jobs (each in row order)."""

    jobs: "OrderedDict[ItemKey, List[QueuedChange]]" = field(default_factory=OrderedDict)
    superseded: List[Tuple[QueuedChange, str]] = field(default_factory=list)


def plan_batch(rows: Sequence[QueuedChange]) -> Batch:
    """Group by item (keeping id order) and drop what a later row of the item makes pointless.

    A later watched/unwatched resets the whole state, so it overrides anything
    earlier; a later progress overrides an earlier progress only (a progress
    after a watched is a rewatch and must follow it). Same rule as the queue's
    coalescing, applied again because rows claimed together may predate it.
    """
    groups: "OrderedDict[ItemKey, List[QueuedChange]]" = OrderedDict()
    for row in sorted(rows, key=lambda r: r.id):
        groups.setdefault((row.media_item_id, row.user_id), []).append(row)
    batch = Batch()
    for key, group in groups.items():
        keep: List[QueuedChange] = []
        for i, row in enumerate(group):
            later = next((r for r in group[i + 1:]
                          if r.change_type != PROGRESS or row.change_type == PROGRESS), None)
            if later is not None:
                batch.superseded.append((row, f"replaced by a later {later.change_type} (#{later.id})"))
            else:
                keep.append(row)
        batch.jobs[key] = keep
    return batch


def waited(row: QueuedChange, now: float, online_since: Optional[float], conflict_age: float) -> bool:
    """Did this change wait (retried, old, or made before the server last came back)?

    Only such changes get the conflict check; live ones are applied as made, so
    a deliberate rewind or unwatch is kept.
    """
    if row.attempt_count > 0:
        return True
    if now - row.created_at > conflict_age:
        return True
    return online_since is not None and row.created_at <= online_since


def _fmt(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def conflict(row: QueuedChange, state: ItemState, *, own_write_until: Optional[float] = None) -> Optional[str]:
    """Why ``row`` must not overwrite the server's ``state``, or None to send it.

    The server wins when it was changed at or after the change was made (another
    device, or this change already landed before a crash). ``own_write_until``:
    the latest time this worker wrote the item itself; a server stamp no later
    than that is ours, not another device's.
    """
    t = state.last_played_at
    if t is None:
        return None
    # Plex stamps whole seconds (truncated): allow for it, else a microsecond.
    slack = 1.0 if float(t).is_integer() else 0.001
    if t + slack < row.created_at:
        return None
    if own_write_until is not None and t <= own_write_until + slack:
        return None
    return (f"the server's state changed at {_fmt(t)}, after this change was made "
            f"({_fmt(row.created_at)}): kept the server's")
