"""Playback Sync: keeps media servers in step with what is watched in mpv and Kodi."""

__version__ = "0.1.0"
