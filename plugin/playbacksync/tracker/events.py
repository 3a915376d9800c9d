"""Host-neutral playback events: what a host reports, in plain data.

Hosts (mpv, Kodi) translate their player's callbacks into these; the tracker
turns them into changes. Positions and durations are seconds (float) as the
players give them; None where the player does not know.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, Optional

STARTED = "started"  # a new entry began (media set)
POSITION = "position"  # periodic position sample while playing
PAUSED = "paused"
RESUMED = "resumed"
SEEKED = "seeked"  # a seek has settled at position
ENDED = "ended"  # reason: eof | stop | quit | error | redirect
MARKED_WATCHED = "marked_watched"  # the viewer marked it by hand
MARKED_UNWATCHED = "marked_unwatched"
EVENT_KINDS = (STARTED, POSITION, PAUSED, RESUMED, SEEKED, ENDED, MARKED_WATCHED, MARKED_UNWATCHED)


@dataclass(frozen=True)
class MediaRef:
    """What is playing, as the host knows it; identification maps it to server items."""

    path: str  # local path or URL, as played
    title: str = ""
    provider_ids: Dict[str, str] = field(default_factory=dict)  # imdb/tmdb/tvdb, when the host knows them
    entry_key: str = ""  # host's per-entry key (mpv playlist_entry_id, Kodi item), tells entries apart
    kind: str = ""  # "movie" | "episode" | "" (unknown); provider ids are compared only within a kind


@dataclass(frozen=True)
class PlaybackEvent:
    kind: str
    media: Optional[MediaRef] = None
    position: Optional[float] = None  # seconds
    duration: Optional[float] = None  # seconds
    reason: Optional[str] = None  # for ENDED
    at: float = 0.0  # host's monotonic clock, seconds


def finite(value) -> Optional[float]:
    """A player's number as a finite float, or None (None, NaN, inf, junk)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
