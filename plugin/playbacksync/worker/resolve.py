"""Resolving a row's media reference to the server's item: a step of syncing.

A change is recorded against what the player knew (app.py); the lane asks
identification for the server's item just before sending, never blocking
(``wait=0``). A miss waits with backoff like a transient error, is tried
again at once when that server's index refreshes, and reads "waiting to
identify: <reason>" in ``status``. Past ``unidentified_after`` seconds (the
``unidentified_days`` setting), or when identification says trying again
cannot help, the row becomes a failed change naming why: kept, shown,
retryable and clearable, never dropped silently.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, List, Sequence

from ..backends.base import NotFoundError
from ..changes import UNWATCHED, WATCHED, QueuedChange
from ..redact import redact
from . import events as ev
from .backoff import backoff_delay

if TYPE_CHECKING:  # pragma: no cover
    from .lane import Lane

log = logging.getLogger(__name__)

WAITING = "waiting to identify: "


def resolve_rows(lane: "Lane", rows: Sequence[QueuedChange]) -> List[QueuedChange]:
    """The rows whose item is known (resolving those that are not); the others are put back."""
    out: List[QueuedChange] = []
    for row in rows:
        if row.resolved:
            out.append(row)
            continue
        if lane.halted():
            lane._release([row])
            continue
        refreshes = lane.w.refreshes.get(lane.source_id, 0)
        match = _identify(lane, row)
        if match is not None and match.item_id:
            item_id = str(match.item_id)
            with lane.lock:
                if lane.abandoned:
                    continue
                lane.w.queue.resolve_item(row.id, item_id)
            out.append(replace(row, media_item_id=item_id))
        else:
            final = bool(getattr(match, "final", False))
            if not final and not lane._still_online(lane.generation):
                # The server is down, so it could not answer: not this change's fault, no attempt
                # counted; it goes out when the server is back (the lane probes it with backoff).
                lane._release([row])
                continue
            _unidentified(lane, row, getattr(match, "reason", "") or "no identification is running", final)
            if not final and lane.w.refreshes.get(lane.source_id, 0) != refreshes:
                # The index was refreshed while this row was being identified: its wake-up came before
                # the row's backoff was written, so the row is made due again (it would wait it out).
                lane.w.wake_unresolved(lane.source_id)
    return out


def item_gone(lane: "Lane", rows: Sequence[QueuedChange], exc: BaseException) -> List[QueuedChange]:
    """The server answered 404 for a resolved row's item: deleted or replaced since it was
    identified (the index may be minutes old). A row recorded against a file or provider ids
    waits to be identified again (a refresh of the index is started) instead of failing; never
    written elsewhere on a guess. Returns the rows this does not cover (the caller fails them):
    a row with nothing to identify it by, or one that has come back to this too often."""
    if not isinstance(exc, NotFoundError):
        return list(rows)
    left: List[QueuedChange] = []
    again = False
    for row in rows:
        media = row.media
        if media is None or not (media.path or media.provider_ids) or row.attempt_count + 1 >= lane.w.max_attempts:
            left.append(row)
            continue
        reason = f"{WAITING}item {row.media_item_id} is no longer on the server: identified again after its " \
                 f"index refreshes ({redact(exc)})"
        until = lane.w.clock() + backoff_delay(row.attempt_count + 1, base=lane.w.backoff_base,
                                               cap=lane.w.backoff_cap, rng=lane.w.rng)
        again |= lane._write([row.id], lane.w.queue.mark_retry, row.id, reason, until, count_attempt=True,
                             unresolve=True)
    if again and lane.w.identifier is not None:
        try:
            lane.w.identifier.refresh(lane.source_id, wait=False)
        except Exception:  # the refresh is a help, not a condition
            log.exception("server %s: could not start an index refresh", lane.source_id)
    return left


def _identify(lane: "Lane", row: QueuedChange):
    identifier = lane.w.identifier
    if identifier is None:
        return None
    try:
        return identifier.identify_one(lane.source_id, row.media, wait=0)
    except Exception as exc:  # identification must never stop a lane
        log.exception("server %s: identifying change #%s failed", lane.source_id, row.id)

        class _Miss:
            item_id, final, reason = None, False, f"identification failed: {redact(exc)}"
        return _Miss()


def _unidentified(lane: "Lane", row: QueuedChange, reason: str, final: bool) -> None:
    w = lane.w
    now = w.clock()
    age = now - row.created_at
    if final or age >= w.unidentified_after:
        days = w.unidentified_after / 86400
        why = (f"not identified on {lane.source_id}: {reason}" if final else
               f"not identified on {lane.source_id} within {days:g} day{'s' * (days != 1)}: {reason}")
        lane._fail(row, why, in_doubt=row.sent_at is not None)
        return
    attempts = row.attempt_count + 1
    until = now + backoff_delay(attempts, base=w.backoff_base, cap=w.backoff_cap, rng=w.rng)
    refreshing = _refreshing(w, lane.source_id)  # its end wakes the lane: nothing to tell yet
    if lane._write([row.id], w.queue.mark_retry, row.id, WAITING + reason, until, count_attempt=True) \
            and not refreshing and row.media_key not in lane.told_unidentified:
        lane.told_unidentified.add(row.media_key)  # once per media and run, not once per row
        w._emit(ev.NOT_IDENTIFIED, lane.source_id,
                f"{describe(row)} is not identified on {lane.source_id} yet (kept; tried again when its "
                f"index refreshes): {reason}", row)


def _refreshing(w, server_id: str) -> bool:
    """A refresh of that server's item index is under way (it may well find the item)."""
    try:
        return server_id in w.identifier.refresh_progress()
    except Exception:  # no identifier, or one without progress: tell at once
        return False


def describe(row: QueuedChange) -> str:
    """A change as the viewer knows it: what, and the title (or item) it is for."""
    name = (row.media.title if row.media is not None and row.media.title else "") or row.media_item_id or \
        (row.media.path if row.media is not None else "") or f"#{row.id}"
    if row.change_type == WATCHED:
        return f"watched ({name})"
    if row.change_type == UNWATCHED:
        return f"unwatched ({name})"
    pos = (row.position_ms or 0) // 1000
    return f"position {pos // 3600}:{pos // 60 % 60:02d}:{pos % 60:02d} ({name})"
