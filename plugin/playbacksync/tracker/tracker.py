"""The tracker: decides, from playback events, which changes a viewer made.

Pure and host-neutral: no I/O, no threads, no player; the host's monotonic
``event.at`` is the only clock for throttling, ``wall_clock`` only stamps
``created_at``. Not thread-safe: feed it from one thread at a time.

Rules (README "How playback is tracked" says the same for users):

* A *viewing* runs from STARTED to ENDED, or to the next STARTED, which first
  flushes the open viewing's last position as if it had been stopped.
  Events while no viewing is open are ignored, except manual marks that name
  their media.
* Progress is sent at most once per ``progress_interval`` seconds while
  playing (counted from the start or from the last progress sent), and at
  once on pause, on a settled seek and at the end of a viewing (any reason).
  The same position (within 1 s) is not sent twice in a row.
* Start grace: no progress for a position before
  ``min(start_grace_seconds, start_grace_percent % of the duration)``
  (30 s / 5 % by default), so opening a file by accident and closing it does
  not overwrite the resume point the server has.
* Watched: when the position reaches ``watched_percent`` of a known duration
  while playing, on pause or at the end, or when the viewing ends with
  reason ``eof`` within ``EOF_SLACK_SECONDS`` of the known duration. An end of
  file anywhere else (a truncated or still-downloading file, ``--end``,
  ``--length`` or ``--ab-loop`` stopping at 40 %) is not "finished": it gives
  progress at the position where playback ended. A seek landing past the threshold does not count by
  itself (the viewer may be skipping around); playing on from there does.
  Sent once per viewing. Afterwards progress at or past the threshold is not
  sent (a resume point in the credits would make the item "in progress"
  again); seeking back below it sends progress again, but never a second
  watched in the same viewing (on Plex that would count a second play).
  Starting the entry again is a new viewing.
* Manual marks give a change at once, always. Watched by hand counts as the
  viewing's watched; unwatched by hand turns the automatic watched off for
  the rest of the viewing (else the next sample past the threshold would
  undo it).
* Unknown duration (None, 0, negative, NaN, infinite: live streams):
  progress only (``duration_ms`` None), never watched automatically, not even
  at eof (a live stream that ends or drops was not "finished").
* Positions: None, NaN or infinite are ignored (the last known position
  stays); a negative one counts as 0; one past a known duration as the
  duration (mpv reports a frame past the end).
* End reason ``error``: never watched; the last position is still sent as
  progress (that is where the viewer was). ``stop``, ``quit`` and
  ``redirect`` are plain ends.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, List, Optional

from ..changes import PROGRESS, UNWATCHED, WATCHED
from .events import (ENDED, MARKED_UNWATCHED, MARKED_WATCHED, PAUSED, POSITION, RESUMED, SEEKED,
                     STARTED, MediaRef, PlaybackEvent, finite)

_SAME_POSITION = 1.0  # seconds: closer than this to the last progress sent is "the same place"
# An end of file this close to the known duration is the real end (players stop a frame or a
# rounding short of it; the last position sample can lag the end by up to a second or so).
EOF_SLACK_SECONDS = 5.0


@dataclass(frozen=True)
class TrackedChange:
    """One change a viewer made to one thing played; identification adds the server items."""

    media: MediaRef
    change_type: str  # changes.PROGRESS | WATCHED | UNWATCHED
    position_ms: Optional[int]
    duration_ms: Optional[int]
    created_at: float  # wall-clock epoch seconds


def _same_media(a: MediaRef, b: MediaRef) -> bool:
    return a.path == b.path and a.entry_key == b.entry_key


def _ms(seconds: Optional[float]) -> Optional[int]:
    return None if seconds is None else int(round(seconds * 1000))


class _Viewing:
    def __init__(self, media: MediaRef, at: float):
        self.media = media
        self.duration: Optional[float] = None
        self.position: Optional[float] = None
        self.paused = False
        self.last_progress_at = at
        self.sent_position: Optional[float] = None
        self.watched_sent = False  # automatic or by hand
        self.auto_watched_off = False  # unwatched by hand


class Tracker:
    def __init__(self, progress_interval: float = 10.0, watched_percent: float = 90.0,
                 wall_clock: Callable[[], float] = time.time, *, start_grace_seconds: float = 30.0,
                 start_grace_percent: float = 5.0):
        if not progress_interval > 0:
            raise ValueError("progress_interval must be more than 0 seconds")
        if not 0 < watched_percent <= 100:
            raise ValueError("watched_percent must be more than 0 and at most 100")
        self.progress_interval = float(progress_interval)
        self.watched_percent = float(watched_percent)
        self.start_grace_seconds = float(start_grace_seconds)
        self.start_grace_percent = float(start_grace_percent)
        self._wall_clock = wall_clock
        self._viewing: Optional[_Viewing] = None

    def handle(self, event: PlaybackEvent) -> List[TrackedChange]:
        out: List[TrackedChange] = []
        kind = event.kind
        if kind == STARTED:
            if self._viewing is not None:
                self._end(self._viewing, None, out)
            if event.media is None:
                self._viewing = None
                return out
            self._viewing = v = _Viewing(event.media, event.at)
            self._update(v, event)
            return out
        if kind in (MARKED_WATCHED, MARKED_UNWATCHED):
            self._mark(event, out)
            return out
        v = self._viewing
        if v is None or (event.media is not None and not _same_media(event.media, v.media)):
            return out
        self._update(v, event)
        if kind == POSITION:
            if not v.paused:
                self._check_watched(v, out)
                if event.at - v.last_progress_at >= self.progress_interval:
                    self._progress(v, event.at, out)
        elif kind == PAUSED:
            v.paused = True
            self._check_watched(v, out)
            self._progress(v, event.at, out)
        elif kind == RESUMED:
            v.paused = False
        elif kind == SEEKED:
            self._progress(v, event.at, out)
        elif kind == ENDED:
            self._end(v, event.reason, out)
            self._viewing = None
        return out

    # -- rules -----------------------------------------------------------
    def _update(self, v: _Viewing, event: PlaybackEvent) -> None:
        duration = finite(event.duration)
        if duration is not None:
            v.duration = duration if duration > 0 else None
        position = finite(event.position)
        if position is not None:
            position = max(0.0, position)
            if v.duration is not None:
                position = min(position, v.duration)
            v.position = position

    def _threshold(self, v: _Viewing) -> Optional[float]:
        return None if v.duration is None else v.duration * self.watched_percent / 100.0

    def _past_threshold(self, v: _Viewing) -> bool:
        threshold = self._threshold(v)
        return threshold is not None and v.position is not None and v.position >= threshold

    def _grace(self, v: _Viewing) -> float:
        if v.duration is None:
            return self.start_grace_seconds
        return min(self.start_grace_seconds, v.duration * self.start_grace_percent / 100.0)

    def _change(self, v: _Viewing, change_type: str) -> TrackedChange:
        return TrackedChange(v.media, change_type, _ms(v.position), _ms(v.duration),
                             self._wall_clock())

    def _check_watched(self, v: _Viewing, out: List[TrackedChange]) -> None:
        if not v.watched_sent and not v.auto_watched_off and self._past_threshold(v):
            v.watched_sent = True
            out.append(self._change(v, WATCHED))

    def _progress(self, v: _Viewing, at: Optional[float], out: List[TrackedChange]) -> None:
        if v.position is None or v.position < self._grace(v):
            return
        if v.watched_sent and self._past_threshold(v):
            return
        if v.sent_position is not None and abs(v.position - v.sent_position) < _SAME_POSITION:
            return
        v.sent_position = v.position
        if at is not None:
            v.last_progress_at = at
        out.append(self._change(v, PROGRESS))

    def _end(self, v: _Viewing, reason: Optional[str], out: List[TrackedChange]) -> None:
        if reason != "error":
            self._check_watched(v, out)
            if (reason == "eof" and v.duration is not None and not v.watched_sent
                    and not v.auto_watched_off and v.position is not None
                    and v.position >= v.duration - EOF_SLACK_SECONDS):
                v.watched_sent = True
                v.position = v.duration
                out.append(self._change(v, WATCHED))
        self._progress(v, None, out)

    def _mark(self, event: PlaybackEvent, out: List[TrackedChange]) -> None:
        v = self._viewing
        media = event.media if event.media is not None else (v.media if v else None)
        if media is None:
            return
        change_type = WATCHED if event.kind == MARKED_WATCHED else UNWATCHED
        if v is not None and _same_media(media, v.media):
            self._update(v, event)
            v.watched_sent = change_type == WATCHED
            v.auto_watched_off = change_type == UNWATCHED
            out.append(self._change(v, change_type))
            return
        duration = finite(event.duration)
        position = finite(event.position)
        out.append(TrackedChange(media, change_type,
                                 _ms(None if position is None else max(0.0, position)),
                                 _ms(duration if duration and duration > 0 else None),
                                 self._wall_clock()))
