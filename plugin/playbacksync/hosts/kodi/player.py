"""What is playing in Kodi, as host-neutral PlaybackEvents.

``KodiPlayer`` turns Kodi's player callbacks and a 1 s position poll (Kodi has
no position event) into events for the service loop's ``emit``; ``library_media``
answers which file a library item is (for play-count changes made in the library).
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Dict, Optional

from ...tracker.events import ENDED, PAUSED, POSITION, RESUMED, SEEKED, STARTED, MediaRef
from . import kodi_api

_KINDS = {"movie": "movie", "episode": "episode"}


def library_media(kind: str, dbid: int) -> Optional[MediaRef]:
    """A library item's file and unique ids, asked of Kodi's own JSON-RPC."""
    method, param, field = {
        "movie": ("VideoLibrary.GetMovieDetails", "movieid", "moviedetails"),
        "episode": ("VideoLibrary.GetEpisodeDetails", "episodeid", "episodedetails"),
    }.get(kind, (None, None, None))
    if method is None:
        return None
    answer = kodi_api.json_rpc(method, {param: dbid, "properties": ["file", "uniqueid", "title"]})
    details = answer.get("result", {}).get(field)
    if not details:
        return None
    ids = {k: str(v) for k, v in (details.get("uniqueid") or {}).items()
           if k in ("imdb", "tmdb", "tvdb") and v}
    return MediaRef(path=details.get("file", ""), title=details.get("title", ""), provider_ids=ids,
                    entry_key=f"{kind}:{dbid}:library", kind=_KINDS.get(kind, ""))


class KodiPlayer(kodi_api.Player):
    """Player callbacks -> events. Holds the current session (media, last position).

    ``emit(kind, media, position, duration, reason=None)`` receives the events;
    ``on_new_file()`` is called when a new item starts (per-file messages may show again).
    """

    def __init__(self, emit: Callable, on_new_file: Callable[[], None] = lambda: None):
        super().__init__()
        self.emit = emit
        self.on_new_file = on_new_file
        self.lock = threading.RLock()
        self.media: Optional[MediaRef] = None
        self.position: Optional[float] = None
        self.duration: Optional[float] = None
        self.paused = False
        self.serial = 0
        self.last_end: Dict[str, float] = {}  # dbid key -> when a session of it ended (playcount echo)
        self.echo_seen = False  # Kodi already raised the count during this session

    def playing_media(self) -> Optional[MediaRef]:
        try:
            path = self.getPlayingFile()
        except RuntimeError:  # nothing playing any more
            return None
        title, ids, kind = "", {}, ""
        try:
            tag = self.getVideoInfoTag()
            title = tag.getTitle() or ""
            for provider in ("imdb", "tmdb", "tvdb"):
                value = tag.getUniqueID(provider)
                if value:
                    ids[provider] = value
            kind = _KINDS.get(tag.getMediaType() or "", "")
            key = f"{tag.getMediaType() or 'file'}:{tag.getDbId()}:{self.serial}"
        except RuntimeError:
            key = f"file::{self.serial}"
        return MediaRef(path=path, title=title, provider_ids=ids, entry_key=key, kind=kind)

    # Kodi calls these on the add-on's thread.
    def onAVStarted(self):
        with self.lock:
            if self.media is not None:  # next playlist item without a stop in between
                self._end("stop")
            self.serial += 1
            self.on_new_file()
            media = self.playing_media()
            if media is None:
                return
            self.media, self.paused, self.position, self.duration = media, False, None, None
            self._sample()
            self.emit(STARTED, media, self.position, self.duration)
            kodi_api.log(f"playing {media.title or media.path} ids={media.provider_ids}")

    def onPlayBackPaused(self):
        self._toggle(True, PAUSED)

    def onPlayBackResumed(self):
        self._toggle(False, RESUMED)

    def _toggle(self, paused: bool, kind: str) -> None:
        with self.lock:
            if self.media is not None:
                self._sample()
                self.paused = paused
                self.emit(kind, self.media, self.position, self.duration)

    def onPlayBackSeek(self, time_ms, offset_ms):
        with self.lock:
            if self.media is not None:
                self.position = max(0.0, time_ms / 1000.0)
                self.emit(SEEKED, self.media, self.position, self.duration)

    def onPlayBackStopped(self):
        self.end("stop")

    def onPlayBackEnded(self):
        self.end("eof")

    def onPlayBackError(self):
        self.end("error")

    def end(self, reason: str) -> None:
        with self.lock:
            if self.media is not None:
                self._end(reason)

    def _end(self, reason: str) -> None:
        # The last polled position: getTime() is gone once playback stopped.
        self.emit(ENDED, self.media, self.position, self.duration, reason=reason)
        kind, dbid = self.media.entry_key.split(":")[:2]
        near_end = bool(self.position and self.duration and self.position >= 0.85 * self.duration)
        if (reason == "eof" or near_end) and not self.echo_seen:  # Kodi may now raise the count itself
            self.last_end[f"{kind}:{dbid}"] = time.monotonic()
        kodi_api.log(f"ended ({reason}) at {self.position}")
        self.media, self.paused, self.echo_seen = None, False, False

    def _sample(self) -> None:
        try:
            if not (self.isPlayingVideo() or self.isPlaying()):
                return
            position, total = self.getTime(), self.getTotalTime()
        except RuntimeError:
            return
        # While stopping, Kodi still says "playing" but reports 0: keep the last real sample
        # (a real jump back comes with onPlayBackSeek, which sets the position itself).
        if position <= 0.0 and (self.position or 0.0) > 1.0:
            return
        self.position = max(0.0, position)
        self.duration = total if total > 0 else self.duration

    def poll(self) -> None:
        with self.lock:
            if self.media is not None and not self.paused:
                self._sample()
                self.emit(POSITION, self.media, self.position, self.duration)

    def own_count(self, kind: str, dbid: int, within: float = 15.0) -> bool:
        """Is a play count rise for this item Kodi's own, after playing it to the end?

        Kodi bumps the count itself when playback passes its watched mark; the end
        event already said so, so that echo is dropped (once).
        """
        with self.lock:
            if self.media is not None and self.media.entry_key.startswith(f"{kind}:{dbid}:"):
                self.echo_seen = True
                return True
            ended = self.last_end.pop(f"{kind}:{dbid}", None)
            return ended is not None and time.monotonic() - ended < within
