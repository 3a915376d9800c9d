"""The only module that calls Kodi (xbmc, xbmcaddon, xbmcgui, xbmcvfs).

Everything the add-on asks of Kodi goes through these small functions: the
log, notifications and dialogs, the add-on's settings, JSON-RPC, the profile
folder, the home window's properties and builtins. The player, the service
loop and the actions hold the logic and stay free of Kodi calls, so a reader
finds every Kodi call here (and tests can see which ones exist).
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict, Iterable, Optional

import xbmc
import xbmcaddon
import xbmcgui
import xbmcvfs

from ...notify_policy import HEADING
from ...redact import redact_text

ADDON_ID = "service.playbacksync"
PROFILE = "special://profile/addon_data/" + ADDON_ID  # per Kodi profile: settings, tokens, queue
HOME_WINDOW = 10000

# Base classes for the player and monitor (Kodi calls their methods).
Player = xbmc.Player
Monitor = xbmc.Monitor

DEBUG, INFO, WARNING, ERROR = xbmc.LOGDEBUG, xbmc.LOGINFO, xbmc.LOGWARNING, xbmc.LOGERROR


# -- log -----------------------------------------------------------------------------
def log(message: Any, level: int = INFO) -> None:
    xbmc.log(f"[{ADDON_ID}] {redact_text(message)}", level)


class _KodiLogHandler(logging.Handler):
    """Routes the library's ``logging`` records to Kodi's log, redacted."""

    _LEVELS = ((logging.ERROR, ERROR), (logging.WARNING, WARNING), (logging.INFO, INFO))

    def emit(self, record):
        level = next((k for p, k in self._LEVELS if record.levelno >= p), DEBUG)
        try:
            log(f"{record.name}: {self.format(record)}", level)
        except Exception:
            pass


def install_logging() -> None:
    root = logging.getLogger("playbacksync")
    if not any(isinstance(h, _KodiLogHandler) for h in root.handlers):
        root.addHandler(_KodiLogHandler())
    root.setLevel(logging.INFO)
    root.propagate = False


# -- what the viewer sees -----------------------------------------------------------------
def notify(text: str, error: bool = False) -> None:
    """A toast; long enough to read the whole text (Kodi scrolls what does not fit)."""
    icon = xbmcgui.NOTIFICATION_ERROR if error else xbmcgui.NOTIFICATION_INFO
    shown_ms = max(4000 if error else 3000, 60 * len(text))
    log(f"shown: {text}")  # what the viewer saw, for support (and the tests)
    xbmcgui.Dialog().notification(HEADING, redact_text(text), icon, shown_ms)


def ok(text: str) -> None:
    """A message the viewer confirms; the text is shown whole (the dialog wraps it)."""
    xbmcgui.Dialog().ok(HEADING, redact_text(text))


def text_viewer(title: str, text: str) -> None:
    xbmcgui.Dialog().textviewer(f"{HEADING}: {title}", redact_text(text))


def ask(heading: str, default: str = "", hidden: bool = False) -> str:
    return xbmcgui.Dialog().input(heading, default, option=xbmcgui.ALPHANUM_HIDE_INPUT if hidden else 0)


class Progress:
    """A cancellable progress dialog (Plex's link code)."""

    def __init__(self, text: str):
        self._dialog = xbmcgui.DialogProgress()
        self._dialog.create(HEADING, text)

    def cancelled(self) -> bool:
        return bool(self._dialog.iscanceled())

    def close(self) -> None:
        self._dialog.close()


def sleep(seconds: float) -> None:
    xbmc.sleep(int(seconds * 1000))


# -- the add-on's settings and folder ------------------------------------------------
def read_settings(ids: Iterable[str]) -> Dict[str, str]:
    addon = xbmcaddon.Addon(ADDON_ID)
    return {sid: addon.getSetting(sid) for sid in ids}


def write_settings(values: Dict[str, str]) -> None:
    addon = xbmcaddon.Addon(ADDON_ID)
    for sid, value in values.items():
        addon.setSetting(sid, value)


def open_settings() -> None:
    """The add-on's settings dialog (actions return to it)."""
    xbmcaddon.Addon(ADDON_ID).openSettings()


def profile_dir() -> str:
    """This Kodi profile's data folder for the add-on (each profile has its own)."""
    path = xbmcvfs.translatePath(PROFILE)
    os.makedirs(path, exist_ok=True)
    return path


def profile_name() -> str:
    return xbmc.getInfoLabel("System.ProfileName") or ""


# -- talking to Kodi and between the add-on's processes --------------------------------
def json_rpc(method: str, params: Optional[dict] = None) -> dict:
    request = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}
    return json.loads(xbmc.executeJSONRPC(json.dumps(request)))


def set_home_property(name: str, value: str) -> None:
    xbmcgui.Window(HOME_WINDOW).setProperty(name, value)


def home_property(name: str) -> str:
    return xbmcgui.Window(HOME_WINDOW).getProperty(name)


def clear_home_property(name: str) -> None:
    xbmcgui.Window(HOME_WINDOW).clearProperty(name)


def tell_service(message: str) -> None:
    """A message for the running service (its Monitor.onNotification gets it)."""
    xbmc.executebuiltin(f"NotifyAll({ADDON_ID},{message})")
