"""Playback tracking: host-neutral events in, changes out (see tracker.py for the rules)."""
from .events import MediaRef, PlaybackEvent
from .tracker import Tracker, TrackedChange

__all__ = ["MediaRef", "PlaybackEvent", "Tracker", "TrackedChange"]
