"""What a viewing's live reports are, and what the server accepted of them: pure decisions.

``plan_reports`` says which reports the server's own client would send for a playback event
(``Playing`` at the start, progress about every interval and at once on pause, resume and seek,
``Stopped`` at the end); ``Outcome`` is what the accepted ones set on one server. The sending,
and who counts each viewing's play, live in reporter.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from ..tracker.events import ENDED, PAUSED, POSITION, RESUMED, SEEKED, STARTED, MediaRef, PlaybackEvent, finite

START, PROGRESS, STOPPED = "start", "progress", "stopped"


@dataclass(frozen=True)
class Report:
    state: str  # START | PROGRESS | STOPPED
    position_ms: int
    paused: bool


@dataclass
class Viewing:
    media: MediaRef
    session_id: str
    started_wall: float = 0.0
    duration: Optional[float] = None
    position: float = 0.0
    paused: bool = False
    last_report_at: float = 0.0


def plan_reports(v: Viewing, event: PlaybackEvent, progress_interval: float) -> List[Report]:
    """What the server's own client would report for ``event`` (pure: updates ``v`` only)."""
    duration = finite(event.duration)
    if duration is not None and duration > 0:
        v.duration = duration
    position = finite(event.position)
    if position is not None:
        v.position = max(0.0, min(position, v.duration) if v.duration else position)
    at = event.at
    kind = event.kind
    out: List[Report] = []

    def report(state: str) -> None:
        v.last_report_at = at
        out.append(Report(state, int(round(v.position * 1000)), v.paused))

    if kind == STARTED:
        report(START)
    elif kind == POSITION:
        if not v.paused and at - v.last_report_at >= progress_interval:
            report(PROGRESS)
    elif kind in (PAUSED, RESUMED):
        v.paused = kind == PAUSED
        report(PROGRESS)
    elif kind == SEEKED:
        report(PROGRESS)
    elif kind == ENDED:
        report(STOPPED)
    return out


@dataclass
class Outcome:
    """What the live reports of one viewing set on one server (only reports the server accepted)."""

    started: bool = False        # the start was accepted: the server counted it (Jellyfin/Emby)
    stopped: bool = False        # the end was accepted: the resume point is where playback ended
    stop_unanswered_ms: Optional[int] = None  # the end went out but its answer never came (it may have landed)
    furthest_ms: int = 0         # furthest position the server accepted a report for
    duration_ms: Optional[int] = None
    started_wall: float = 0.0    # the viewing's wall-clock window: queued changes made in it are its own
    ended_wall: Optional[float] = None
    reports: List[Tuple[str, int, bool]] = field(default_factory=list)
