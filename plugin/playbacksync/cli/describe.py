"""Queue rows as a person reads them: the title, the server's name, the change in words.

Rows recorded against a media reference (``row.media``: title, kind, path)
show that title; older rows without one fall back to the name the item index
holds for the server's item id, then to the file name, then to the id.
``--json`` output keeps the ids beside the words.
"""
from __future__ import annotations

import os
import re
import time
from typing import Callable, Dict, Optional

from ..changes import PENDING, PROGRESS, UNWATCHED, WATCHED

_EPISODE = re.compile(r"^(?P<series>.*?)[\s._-]*\bS(?P<season>\d{1,3})[\s._-]*E(?P<episode>\d{1,4})\b(?P<rest>.*)$",
                      re.IGNORECASE)
_EXTENSIONS = re.compile(r"\.(mkv|mp4|m4v|avi|mov|webm|ts|m2ts|wmv|flv|mpg|mpeg|ogv)$", re.IGNORECASE)

Names = Callable[[str, str], Optional[str]]  # (server id, item id) -> the server's name for it


def clock(ms: Optional[int]) -> str:
    """Milliseconds as H:MM:SS."""
    s = max(0, int(ms or 0) // 1000)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def change_words(row) -> str:
    if row.change_type == WATCHED:
        return "watched"
    if row.change_type == UNWATCHED:
        return "unwatched"
    if row.change_type == PROGRESS:
        return f"stopped at {clock(row.position_ms)}"
    return row.change_type


def pretty_title(title: str, kind: str = "") -> str:
    """A title or file name made readable; episodes as "Series, season S episode E"."""
    title = _EXTENSIONS.sub("", os.path.basename(title.rstrip("/")) if "/" in title else title).strip()
    m = _EPISODE.match(title)
    if m and (kind in ("", "episode")):
        series = re.sub(r"[._]+", " ", m["series"]).strip(" -") or "episode"
        rest = re.sub(r"[._]+", " ", m["rest"]).strip(" -")
        words = f"{series}, season {int(m['season'])} episode {int(m['episode'])}"
        return f"{words} ({rest})" if rest else words
    if "." in title and " " not in title:
        title = title.replace(".", " ")
    return title


def media_of(row):
    return getattr(row, "media", None)


def title_of(row, names: Optional[Names] = None) -> str:
    """What a person recognises the row's item by."""
    media = media_of(row)
    kind = getattr(media, "kind", "") or ""
    if media is not None and getattr(media, "title", ""):
        return pretty_title(media.title, kind)
    item = getattr(row, "media_item_id", None)
    if names is not None and item:
        name = names(row.source_id, item)
        if name:
            return pretty_title(name, kind)
    if media is not None and getattr(media, "path", ""):
        return pretty_title(media.path, kind)
    return f"item {item}" if item else "an unidentified item"


def waiting_to_identify(row) -> bool:
    return row.status == PENDING and not getattr(row, "media_item_id", None)


def when(ts: Optional[float]) -> str:
    if not ts:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def row_json(row, names: Optional[Names] = None) -> Dict:
    """A row for scripts: the words and the ids."""
    media = media_of(row)
    return {"id": row.id, "server": row.source_id, "item": getattr(row, "media_item_id", None),
            "title": title_of(row, names), "kind": getattr(media, "kind", "") or None,
            "path": getattr(media, "path", None) or None, "change": change_words(row),
            "change_type": row.change_type, "position_ms": row.position_ms, "status": row.status,
            "waiting_to_identify": waiting_to_identify(row), "attempts": row.attempt_count,
            "error": row.error_message, "resolution": row.resolution, "created_at": row.created_at,
            "updated_at": row.updated_at}


class IndexNames:
    """The item index's names, opened on first use and only if the index file exists."""

    def __init__(self, data_dir: str):
        self.data_dir = data_dir
        self._index = None
        self._tried = False

    def __call__(self, server_id: str, item_id: str) -> Optional[str]:
        if not self._tried:
            self._tried = True
            if os.path.exists(os.path.join(self.data_dir, "index.sqlite")):
                try:
                    from ..identify import ItemIndex

                    self._index = ItemIndex(self.data_dir)
                except Exception:
                    self._index = None
        if self._index is None:
            return None
        try:
            item = self._index.get(server_id, item_id)
        except Exception:
            return None
        if item is None:
            return None
        base = _EXTENSIONS.sub("", os.path.basename(item.path or ""))
        if _EPISODE.match(base):  # the file name says series, season and episode; the name only the episode's
            return base
        return item.name or item.path or None

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
