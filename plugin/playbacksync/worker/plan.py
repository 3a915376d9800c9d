"""Pure decisions the worker makes about claimed rows: what to send, in which
order, what is pointless (dedup), what waited, and what the server overrides.
"""
from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

from ..backends.base import ItemState
from ..changes import PENDING, WATCHED, QueuedChange
from ..queue.rules import KeyRow, superseded_by_later

ItemKey = Tuple[str, str]  # (media_item_id, user_id)


@dataclass
class Batch:
    """Claimed rows of one server, split into per-item jobs (each in row order)."""

    jobs: "OrderedDict[ItemKey, List[QueuedChange]]" = field(default_factory=OrderedDict)
    superseded: List[Tuple[QueuedChange, str]] = field(default_factory=list)


def plan_batch(rows: Sequence[QueuedChange]) -> Batch:
    """Group by item (keeping id order) and drop what a later row of the item makes pointless.

    The queue's own coalescing rule decides (queue/rules.py ``superseded_by_later``),
    applied again here because rows claimed together may predate it.
    Rows must be resolved (their ``media_item_id`` known).
    """
    groups: "OrderedDict[ItemKey, List[QueuedChange]]" = OrderedDict()
    for row in sorted(rows, key=lambda r: r.id):
        groups.setdefault((row.media_item_id, row.user_id), []).append(row)
    batch = Batch()
    for key, group in groups.items():
        keep: List[QueuedChange] = []
        for i, row in enumerate(group):
            me = KeyRow(row.id, row.change_type, PENDING)
            later = [KeyRow(r.id, r.change_type, PENDING) for r in group[i + 1:]]
            by = next((r for r in later if superseded_by_later(me, [r])), None)
            if by is not None:
                batch.superseded.append((row, f"replaced by a later {by.change_type} (#{by.id})"))
            else:
                keep.append(row)
        batch.jobs[key] = keep
    return batch


def waited(row: QueuedChange, now: float, online_since: Optional[float], conflict_age: float) -> bool:
    """Did this change wait (retried, old, made before the server last came back, or sent
    before without an answer: it waited out its send window, e.g. taken back from a process
    that died mid-send, which counts no attempt)?

    Only such changes get the conflict check; live ones are applied as made, so
    a deliberate rewind or unwatch is kept.
    """
    if row.attempt_count > 0 or row.sent_at is not None:
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
    slack = _slack(t)
    if t + slack < row.created_at:
        return None
    if own_write_until is not None and t <= own_write_until + slack:
        return None
    return (f"the server's state changed at {_fmt(t)}, after this change was made "
            f"({_fmt(row.created_at)}): kept the server's")


def _slack(t: float) -> float:
    # Plex stamps whole seconds (truncated): allow for it, else a microsecond.
    return 1.0 if float(t).is_integer() else 0.001


def landed(row: QueuedChange, state: ItemState) -> Optional[str]:
    """Did an earlier send of this watched mark, whose answer never came, reach the server?

    Asked only once that send can no longer land (see worker.py). Yes when the
    server's play count went up since just before that send, or the server's
    last-played time is at or after the change was made (our own write stamps
    the change's time on Jellyfin/Emby and the server's clock on Plex, both no
    earlier). Returns the reason, or None when it did not land (send it).
    Only watched marks are checked: unwatched and positions are absolute, so
    sending one again changes nothing.
    """
    if row.change_type != WATCHED or not state.played:
        return None
    if row.seen_play_count is not None and state.play_count > row.seen_play_count:
        return (f"an earlier send that got no answer was applied (play count {row.seen_play_count} → "
                f"{state.play_count}): not sent again")
    t = state.last_played_at
    if t is not None and t + _slack(t) >= row.created_at:
        return f"the server has it as watched at {_fmt(t)} (an earlier send that got no answer): not sent again"
    return None
