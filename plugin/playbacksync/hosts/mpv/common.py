"""What every mpv host shares, whatever the transport (python-mpv in process, JSON IPC outside).

Property names, the events and end-file reasons mpv reports, the message that
carries the exact unload position, ``keep-open``, the key bindings and the
script messages they send, how a path is made absolute and how file names
and titles are redacted. The notification policy is ``notify_policy`` (all
hosts), URL redaction is ``redact`` (all hosts): both are re-exported here
for the mpv modules.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Dict, Optional

from ...notify_policy import NotifyPolicy as OsdPolicy  # noqa: F401  (one policy for all hosts)
from ...redact import URL_SCHEME, redact_text, redact_url  # noqa: F401

# Properties observed (they change rarely); time-pos is sampled instead (it changes every frame).
OBSERVED = ("pause", "eof-reached", "duration")
# End-file reasons as mpv names them; "quit" is ours, for a player that went away mid-file.
END_REASONS = ("eof", "stop", "quit", "error", "redirect")

# The Lua helper's message: "playback-sync-unload ENTRY_ID POSITION" just before mpv unloads a file
# (time-pos is already gone at end-file). Without it, the last sample stands in.
UNLOAD_MESSAGE = "playback-sync-unload"
# A user's key: `KEY script-message playback-sync ACTION` (input.conf); the installed script's
# bindings send the same message.
MESSAGE = "playback-sync"
ACTIONS = ("mark-watched", "mark-unwatched", "settings")
# Free in mpv's default bindings (Alt+s is screenshot each-frame, Ctrl+w quit, w/W panscan).
DEFAULT_KEYS = {"mark-watched": "Alt+w", "mark-unwatched": "Alt+u", "settings": "Alt+o"}
KEY_SECTION = "playback-sync"
OSD_MS = 4000

UNLOAD_HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lua", "unload_helper.lua")

_KEY = re.compile(r"^[\w+\-]+$")  # a key name as input.conf writes it; nothing that could add a command


class PlayerError(Exception):
    """mpv could not be set up (e.g. an option it does not know); the message says which."""


def key_bindings(keys: Dict[str, str]) -> str:
    """input.conf lines for ``keys`` (action -> key); a key that is not a plain key name is left out."""
    return "\n".join(f"{key} script-message {MESSAGE} {action}"
                     for action, key in keys.items() if key and _KEY.match(key))


def resolve_path(path: str, working_directory: Optional[str]) -> str:
    """A played path made absolute against ``working_directory``; URLs as they are."""
    if not path or URL_SCHEME.match(path) or path == "-":
        return path
    if not os.path.isabs(path) and working_directory:
        path = os.path.join(working_directory, path)
    return os.path.normpath(path)


def shown_title(path: str, title: str) -> Optional[str]:
    """A media title fit for the window and OSD, or None when mpv's own is fine.

    For a URL mpv falls back to the URL's file name, query (token) included.
    """
    if URL_SCHEME.match(path) and "?" in title:
        return redact_url(title) if URL_SCHEME.match(title) else title.split("?", 1)[0]
    return None


def text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def fs_name(value) -> str:
    """A file name from mpv: bytes that are not UTF-8 become the str the OS would give."""
    if value is None:
        return ""
    return os.fsdecode(value) if isinstance(value, bytes) else str(value)



def edit_settings(locations):
    """The settings key: run the settings dialog (its own process), then the config it saved."""
    command = [sys.executable, "-m", "playbacksync.cli"]
    if locations.config:
        command += ["--config", locations.config]
    subprocess.run(command + ["settings"], check=False)
    return locations.load_config()
