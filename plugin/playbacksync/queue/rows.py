"""Row mapping: a queue row <-> a :class:`~playbacksync.changes.QueuedChange`.

One place knows the table's columns and how a change's fields are stored:

* the media reference (what the player knew) is kept in ``media_path``,
  ``media_title``, ``media_provider_ids`` (JSON) and ``media_kind``; a path or
  title that is not valid UTF-8 (a file name from an old disk) is stored as the
  raw bytes (a BLOB) and read back with ``surrogateescape``, so it plays,
  queues and resolves like any other;
* ``media_key`` is the identity the queue coalesces by before the server's
  item is known: the path as played plus the provider ids (see
  :func:`media_key`); a change recorded with only an item id (older rows, and
  callers that know the item) is keyed by that id.
"""
from __future__ import annotations

import json
import math
from typing import Dict, Iterable, Optional, Tuple, Union

from ..changes import PROGRESS, WATCHED, Change, QueuedChange
from ..tracker.events import MediaRef

TABLE = "playback_sync_queue"


def narrowed(sql: str, source_id: Optional[str], column: str, values: Optional[Iterable]) -> Tuple[str, dict]:
    """``sql`` (ending in a WHERE clause) narrowed to one server and to rows whose ``column``
    is one of ``values``, each only when given; with its parameters."""
    params: dict = {}
    if source_id is not None:
        sql += " AND source_id = :s"
        params["s"] = source_id
    if values is not None:
        sql += f" AND {column} IN :ids"  # expanded by SyncQueue._expand
        params["ids"] = list(values)
    return sql, params

COLUMNS = ("id, media_item_id, source_id, user_id, change_type, position_ms, duration_ms, completed, "
           "created_at, status, attempt_count, last_attempt_at, next_attempt_at, updated_at, "
           "error_message, resolution, claim_owner, lease_expires_at, media_key, media_path, media_title, "
           "media_provider_ids, media_kind, sent_at, unsure_until, seen_play_count")

# Columns an INSERT of a new change fills, and the row copied when a progress is sent again.
INSERT_COLUMNS = ("media_item_id, source_id, user_id, change_type, position_ms, duration_ms, completed, "
                  "created_at, media_key, media_path, media_title, media_provider_ids, media_kind")


def _stored_text(text: str) -> Union[str, bytes]:
    """Text as SQLite can keep it: str when it is valid UTF-8, else its raw bytes."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:  # a name decoded with surrogateescape (not UTF-8 on disk)
        return text.encode("utf-8", "surrogateescape")


def _read_text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value or ""


def _provider_ids(media: Optional[MediaRef]) -> Dict[str, str]:
    ids = (media.provider_ids if media is not None else None) or {}
    return {str(k).strip().lower(): str(v).strip() for k, v in sorted(ids.items()) if str(v).strip()}


def media_key(change: Change) -> str:
    """The identity a change is coalesced by: (path as played, provider ids), or the item id.

    Two plays of one file (or one URL) share a key; the same title under
    another path is another key until both are resolved (the claim then
    keeps one row of the item in flight at a time, see ``SyncQueue.claim``).
    """
    media = change.media
    if media is not None and (media.path or media.provider_ids):
        # ensure_ascii: a surrogate-escaped (non-UTF-8) path is kept exactly, in ASCII.
        return "ref:" + json.dumps([media.path or "", _provider_ids(media)], ensure_ascii=True,
                                   sort_keys=True)
    return f"item:{change.media_item_id}"


def to_values(change: Change, now: float) -> dict:
    """The column values of a new row for ``change`` (checked first)."""
    check_change(change)
    media = change.media
    completed = bool(change.completed) if change.change_type == PROGRESS else change.change_type == WATCHED
    return dict(media_item_id=change.media_item_id or None, source_id=change.source_id, user_id=change.user_id,
                change_type=change.change_type, position_ms=change.position_ms, duration_ms=change.duration_ms,
                completed=completed, created_at=change.created_at or now, media_key=media_key(change),
                media_path=_stored_text(media.path) if media is not None else None,
                media_title=_stored_text(media.title) if media is not None else None,
                media_provider_ids=json.dumps(_provider_ids(media), ensure_ascii=True) if media else None,
                media_kind=(media.kind or None) if media is not None else None)


def to_change(row) -> QueuedChange:
    """A row (sqlite3.Row with :data:`COLUMNS`) as the change it holds."""
    try:
        ids = json.loads(row["media_provider_ids"] or "{}")
    except ValueError:
        ids = {}
    media = MediaRef(path=_read_text(row["media_path"]), title=_read_text(row["media_title"]),
                     provider_ids=ids if isinstance(ids, dict) else {}, kind=row["media_kind"] or "")
    return QueuedChange(
        media_item_id=row["media_item_id"], source_id=row["source_id"], user_id=row["user_id"],
        change_type=row["change_type"], position_ms=row["position_ms"],
        duration_ms=row["duration_ms"], completed=bool(row["completed"]),
        created_at=row["created_at"], media=media, id=row["id"], status=row["status"],
        attempt_count=row["attempt_count"], last_attempt_at=row["last_attempt_at"],
        next_attempt_at=row["next_attempt_at"], updated_at=row["updated_at"],
        error_message=row["error_message"], resolution=row["resolution"], media_key=row["media_key"] or "",
        sent_at=row["sent_at"], unsure_until=row["unsure_until"] or 0.0, seen_play_count=row["seen_play_count"])


def check_change(change: Change) -> None:
    """Refuse a change the queue must not store (wrong types, no server, nothing to identify it by)."""
    if not isinstance(change, Change):
        raise TypeError(f"enqueue_change needs a Change, not {type(change).__name__}")
    if not isinstance(change.source_id, str) or not change.source_id:
        raise ValueError(f"change.source_id must be a non-empty string, got {change.source_id!r}")
    item = change.media_item_id
    if item is not None and (not isinstance(item, str) or not item):
        raise ValueError(f"change.media_item_id must be a non-empty string or None, got {item!r}")
    media = change.media
    if media is not None and not isinstance(media, MediaRef):
        raise TypeError(f"change.media must be a MediaRef, not {type(media).__name__}")
    if item is None and (media is None or not (media.path or media.provider_ids)):
        raise ValueError("a change needs media_item_id or a media reference (path or provider ids)")
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
