"""Which sync messages a viewer sees, and in what words: one policy for every host.

mpv shows the result on its OSD, Kodi as a notification; both ask this class,
so the same events give the same messages everywhere.

``notifications`` (the setting):
- ``errors`` (default): failures, a server going offline, sign-in needed,
  a file not synced to a server; each once (per file, or per outage),
  and "back online" after an offline warning;
- ``all``: also watched/unwatched marks saved;
- ``off``: nothing.

Whatever the setting: saved positions (``progress``, position changes
completed) are never announced, a server that is disabled in the settings
is never mentioned, and a text never carries a raw item id, an internal
prefix or a token. Texts are whole sentences; hosts must not cut them.
"""
from __future__ import annotations

import threading
from typing import Iterable, NamedTuple, Optional

from .redact import redact_text

HEADING = "Playback Sync"
SETTINGS = ("all", "errors", "off")
ERROR_KINDS = frozenset(("failed", "auth_required", "offline", "not_identified"))
_MARKS = {"mark_watched": "watched", "mark_unwatched": "unwatched"}


class Notice(NamedTuple):
    text: str      # plain, whole, without the "Playback Sync" heading
    error: bool    # hosts show errors longer / with an error icon


class NotifyPolicy:
    """Decides, per sync message (worker event or service message), what the viewer sees.

    ``servers``: the ids of the enabled servers; messages about any other id
    are dropped (``None``: every id counts as enabled). Thread-safe: the
    worker's thread and the player's thread both call in.
    """

    def __init__(self, notifications: str = "errors", servers: Optional[Iterable[str]] = None):
        self.notifications = notifications if notifications in SETTINGS else "errors"
        self.servers = None if servers is None else frozenset(servers)
        self._shown: set = set()
        self._offline: set = set()
        self._lock = threading.Lock()

    def new_file(self) -> None:
        """A new file plays: per-file messages may show again (outages and sign-in stay told)."""
        with self._lock:
            self._shown = {k for k in self._shown if k[0] in ("offline", "auth_required")}

    def text_for(self, message) -> Optional[str]:
        """The one-line OSD text (with the heading), or None when nothing is shown."""
        notice = self.notice_for(message)
        return f"{HEADING}: {notice.text}" if notice else None

    def notice_for(self, message) -> Optional[Notice]:
        with self._lock:
            return self._notice_for(message)

    def _notice_for(self, message) -> Optional[Notice]:
        kind = getattr(message, "kind", None)
        source = getattr(message, "source_id", None)
        if source is not None and self.servers is not None and source not in self.servers:
            return None  # a disabled (or removed) server is silent
        if self.notifications == "off":
            return None
        name = source or "sync"
        change = getattr(message, "change", None)
        detail = _plain(getattr(message, "message", "") or "", change)
        if kind == "completed":
            what = _MARKS.get(getattr(change, "change_type", None))
            if self.notifications != "all" or what is None:
                return None  # a saved position is never announced
            title = _title(change)
            text = f"{title} marked {what} on {name}" if title else f"marked {what} on {name}"
            return self._once(("completed", name, what, title), text, error=False)
        if kind == "offline":
            self._offline.add(name)
            return self._once(("offline", name), f"{name} is offline; changes are kept and sent later",
                              error=True)
        if kind == "online":
            if name not in self._offline:
                return None
            self._offline.discard(name)
            self._shown.discard(("offline", name))
            return Notice(f"{name} is back online", False)  # closes the offline warning shown
        if kind == "auth_required":
            return self._once(("auth_required", name),
                              f"{name} needs you to sign in again (in the Playback Sync settings)", error=True)
        if kind == "failed":
            return self._once(("failed", name), detail or f"a change could not be saved on {name}", error=True)
        if kind == "not_identified":
            return self._once(("not_identified", name), f"not synced to {name}: {detail}" if detail
                              else f"not synced to {name}", error=True)
        return None  # progress, superseded, and anything new: not for the screen

    def _once(self, key, text: str, *, error: bool) -> Optional[Notice]:
        if key in self._shown:
            return None
        self._shown.add(key)
        return Notice(text, error)


def _title(change) -> str:
    media = getattr(change, "media", None)
    return (getattr(media, "title", "") or "").strip()


def _plain(text: str, change) -> str:
    """The message without raw item ids (replaced by the title when known) and without tokens."""
    item_id = getattr(change, "media_item_id", None)
    if item_id:
        title = _title(change)
        text = text.replace(f" ({item_id})", f" of {title}" if title else "")
        text = text.replace(str(item_id), title or "the item")
    return redact_text(text).strip()
