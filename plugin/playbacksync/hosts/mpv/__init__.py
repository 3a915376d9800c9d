"""The mpv host: one host, two transports.

- ``common``: what both share (property names, end-file reasons, the unload
  message, keys, redaction, the notification policy);
- ``session``: mpv events -> PlaybackEvents, position sampling, OSD, keys;
- ``embedded``: python-mpv in this process (``playback-sync play``; the only
  module importing ``mpv``);
- ``ipc``: JSON IPC to an mpv started elsewhere (``playback-sync attach``);
- ``args``: ``play``'s mpv options; ``play`` / ``attach``: the two commands;
- ``install``: ``playback-sync install mpv`` (the Lua script in lua/).
"""
from .args import parse_mpv_args
from .common import DEFAULT_KEYS, MESSAGE, OsdPolicy, PlayerError, redact_text, redact_url, resolve_path
from .embedded import EXIT_BAD_OPTIONS, EXIT_NOTHING_PLAYED, EXIT_OK, MpvHost, run_player
from .play import LateSink, play

__all__ = ["DEFAULT_KEYS", "EXIT_BAD_OPTIONS", "EXIT_NOTHING_PLAYED", "EXIT_OK", "LateSink", "MESSAGE", "MpvHost",
           "OsdPolicy", "PlayerError", "parse_mpv_args", "play", "redact_text", "redact_url", "resolve_path",
           "run_player"]
