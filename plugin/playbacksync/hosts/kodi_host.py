"""Kodi host: the service add-on's loop and the settings dialog's actions.

The only module that imports xbmc*. It turns ``xbmc.Player`` callbacks, a
1 s position poll (Kodi has no position event) and library play-count
changes into host-neutral PlaybackEvents for ``SyncService.handle``.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from typing import Dict, Optional

import xbmc
import xbmcaddon
import xbmcgui
import xbmcvfs

from ..notify_policy import ERROR_KINDS, NotifyPolicy
from ..redact import redact
from ..tracker.events import (ENDED, MARKED_UNWATCHED, MARKED_WATCHED, PAUSED, POSITION, RESUMED,
                              SEEKED, STARTED, MediaRef, PlaybackEvent)

ADDON_ID = "service.playbacksync"
PROFILE = "special://profile/addon_data/" + ADDON_ID
POLL_SECONDS = 1.0
RUNNING_PROPERTY = "playbacksync.running"  # on the home window: the script asks if the service runs
MIN_PYTHON = (3, 11)  # SQLAlchemy 2.1 and platformdirs 4.14 need it

_SERVER_TYPES = ("plex", "jellyfin", "emby")


def log(message, level=xbmc.LOGINFO) -> None:
    xbmc.log(f"[{ADDON_ID}] {redact(message)}", level)


class _KodiLogHandler(logging.Handler):
    """Routes the library's ``logging`` records to Kodi's log, redacted."""

    _LEVELS = ((logging.ERROR, xbmc.LOGERROR), (logging.WARNING, xbmc.LOGWARNING),
               (logging.INFO, xbmc.LOGINFO))

    def emit(self, record):
        level = next((k for p, k in self._LEVELS if record.levelno >= p), xbmc.LOGDEBUG)
        try:
            log(f"{record.name}: {self.format(record)}", level)
        except Exception:
            pass


def _install_logging() -> None:
    root = logging.getLogger("playbacksync")
    if not any(isinstance(h, _KodiLogHandler) for h in root.handlers):
        root.addHandler(_KodiLogHandler())
    root.setLevel(logging.INFO)
    root.propagate = False


# -- settings --------------------------------------------------------------
def read_flat_settings(addon=None) -> Dict[str, str]:
    """Every setting's value; settings.xml is generated from the same schema (kodi_settings.py)."""
    from ..settings import kodi_setting_ids

    addon = addon or xbmcaddon.Addon(ADDON_ID)
    return {sid: addon.getSetting(sid) for sid in kodi_setting_ids()}


def profile_dir() -> str:
    path = xbmcvfs.translatePath(PROFILE)
    os.makedirs(path, exist_ok=True)
    return path


def _notify(message: str, error: bool = False) -> None:
    icon = xbmcgui.NOTIFICATION_ERROR if error else xbmcgui.NOTIFICATION_INFO
    xbmcgui.Dialog().notification("Playback Sync", redact(message), icon, 5000 if error else 3000)


# -- what is playing -------------------------------------------------------
def media_of(player: xbmc.Player, serial: int) -> Optional[MediaRef]:
    try:
        path = player.getPlayingFile()
    except RuntimeError:  # nothing playing any more
        return None
    title, ids = "", {}
    try:
        tag = player.getVideoInfoTag()
        title = tag.getTitle() or ""
        for provider in ("imdb", "tmdb", "tvdb"):
            value = tag.getUniqueID(provider)
            if value:
                ids[provider] = value
        key = f"{tag.getMediaType() or 'file'}:{tag.getDbId()}:{serial}"
    except RuntimeError:
        key = f"file::{serial}"
    return MediaRef(path=path, title=title, provider_ids=ids, entry_key=key)


def _library_media(kind: str, dbid: int) -> Optional[MediaRef]:
    """A library item's file and unique ids, asked of Kodi's own JSON-RPC."""
    method, param, field = {
        "movie": ("VideoLibrary.GetMovieDetails", "movieid", "moviedetails"),
        "episode": ("VideoLibrary.GetEpisodeDetails", "episodeid", "episodedetails"),
    }.get(kind, (None, None, None))
    if method is None:
        return None
    request = {"jsonrpc": "2.0", "id": 1, "method": method,
               "params": {param: dbid, "properties": ["file", "uniqueid", "title"]}}
    answer = json.loads(xbmc.executeJSONRPC(json.dumps(request)))
    details = answer.get("result", {}).get(field)
    if not details:
        return None
    ids = {k: str(v) for k, v in (details.get("uniqueid") or {}).items()
           if k in ("imdb", "tmdb", "tvdb") and v}
    return MediaRef(path=details.get("file", ""), title=details.get("title", ""), provider_ids=ids,
                    entry_key=f"{kind}:{dbid}:library")


class _Player(xbmc.Player):
    """Player callbacks → events. Holds the current session (media, last position)."""

    def __init__(self, host: "KodiHost"):
        super().__init__()
        self.host = host
        self.lock = threading.RLock()
        self.media: Optional[MediaRef] = None
        self.position: Optional[float] = None
        self.duration: Optional[float] = None
        self.paused = False
        self.serial = 0
        self.last_end: Dict[str, float] = {}  # dbid key -> when a session of it ended (playcount echo)
        self.echo_seen = False  # Kodi already raised the count during this session

    # Kodi calls these on the add-on's thread.
    def onAVStarted(self):
        with self.lock:
            if self.media is not None:  # next playlist item without a stop in between
                self._end("stop")
            self.serial += 1
            self.host.policy.new_file()
            media = media_of(self, self.serial)
            if media is None:
                return
            self.media, self.paused, self.position, self.duration = media, False, None, None
            self._sample()
            self.host.emit(STARTED, media, self.position, self.duration)
            log(f"playing {media.title or media.path} ids={media.provider_ids}")

    def onPlayBackPaused(self):
        with self.lock:
            if self.media is not None:
                self._sample()
                self.paused = True
                self.host.emit(PAUSED, self.media, self.position, self.duration)

    def onPlayBackResumed(self):
        with self.lock:
            if self.media is not None:
                self._sample()
                self.paused = False
                self.host.emit(RESUMED, self.media, self.position, self.duration)

    def onPlayBackSeek(self, time_ms, offset_ms):
        with self.lock:
            if self.media is not None:
                self.position = max(0.0, time_ms / 1000.0)
                self.host.emit(SEEKED, self.media, self.position, self.duration)

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
        self.host.emit(ENDED, self.media, self.position, self.duration, reason=reason)
        kind, dbid = self.media.entry_key.split(":")[:2]
        near_end = bool(self.position and self.duration and self.position >= 0.85 * self.duration)
        if (reason == "eof" or near_end) and not self.echo_seen:  # Kodi may now raise the count itself
            self.last_end[f"{kind}:{dbid}"] = time.monotonic()
        log(f"ended ({reason}) at {self.position}")
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
                self.host.emit(POSITION, self.media, self.position, self.duration)

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


class _Monitor(xbmc.Monitor):
    def __init__(self, host: "KodiHost"):
        super().__init__()
        self.host = host

    def onSettingsChanged(self):
        self.host.reload_requested = True

    def onNotification(self, sender, method, data):
        try:
            self.host.on_notification(sender, method, data)
        except Exception as exc:  # a bad notification must not end the service
            log(f"notification {method} not handled: {exc}", xbmc.LOGWARNING)


class KodiHost:
    def __init__(self):
        self.monitor = _Monitor(self)
        self.player = _Player(self)
        self.service = None
        self.policy = NotifyPolicy("errors")
        self.reload_requested = False
        self._unsubscribe = None

    # -- service lifecycle ----------------------------------------------
    def _load_config(self):
        """The add-on's settings as a Config, or None when they are not usable (said so)."""
        from ..settings import config_from_flat

        try:
            config = config_from_flat(read_flat_settings())
        except Exception as exc:  # bad settings: say which, keep running so a fix reloads
            log(f"settings not usable: {exc}", xbmc.LOGERROR)
            _notify(f"Settings: {exc}", error=True)
            return None
        self.policy = NotifyPolicy(config.sync.notifications, [s.id for s in config.enabled_servers()])
        servers = ", ".join(f"{s.id} ({s.type}) {s.url}" for s in config.enabled_servers()) or "none"
        log(f"starting sync; servers: {servers}; queue in {profile_dir()}")
        return config

    def start_service(self) -> None:
        from ..app import SyncService

        config = self._load_config()
        if config is None:
            return
        self.service = SyncService(config, profile_dir())
        self._unsubscribe = self.service.subscribe(self._on_sync_event)
        self.service.start()

    def stop_service(self) -> None:
        if self.service is None:
            return
        service, self.service = self.service, None
        clean = service.stop(timeout=3.0)
        if self._unsubscribe:
            self._unsubscribe()
        log("sync stopped" + ("" if clean else " (the worker had not finished; the queue keeps what is left)"))

    def reload(self) -> None:
        self.reload_requested = False
        log("settings changed: reloading")
        if self.service is not None:
            config = self._load_config()
            if config is not None:  # the viewing in progress goes on; unusable settings: the old stay
                self.service.reload(config)
            return
        with self.player.lock:  # the settings were not usable before: start now
            self.start_service()
            if self.player.media is not None:  # the new tracker needs the current item
                self.emit(STARTED, self.player.media, self.player.position, self.player.duration)

    def emit(self, kind, media, position=None, duration=None, reason=None) -> None:
        if self.service is not None:
            self.service.handle(PlaybackEvent(kind=kind, media=media, position=position,
                                              duration=duration, reason=reason, at=time.monotonic()))

    def _on_sync_event(self, event) -> None:
        kind, message = getattr(event, "kind", ""), getattr(event, "message", "")
        level = xbmc.LOGWARNING if kind in ERROR_KINDS else xbmc.LOGINFO
        log(f"sync {kind} {getattr(event, 'source_id', None)}: {message}", level)
        notice = self.policy.notice_for(event)
        if notice:
            _notify(notice.text, error=notice.error)

    # -- Kodi notifications ----------------------------------------------
    def on_notification(self, sender, method, data) -> None:
        if method == "VideoLibrary.OnUpdate":
            self._library_update(json.loads(data or "{}"))
        elif sender == ADDON_ID and method.endswith("retry"):
            self.retry_failed()
        elif sender == ADDON_ID and method.endswith("status"):
            threading.Thread(target=self.show_status, daemon=True).start()

    def _library_update(self, payload: dict) -> None:
        if "playcount" not in payload or payload.get("added") or payload.get("transaction"):
            return
        item = payload.get("item") or {}
        kind, dbid = item.get("type"), item.get("id")
        if kind not in ("movie", "episode") or dbid is None:
            return
        watched = int(payload["playcount"]) > 0
        if watched and self.player.own_count(kind, dbid):
            log(f"library {kind} {dbid}: play count from playback, already tracked")
            return
        media = _library_media(kind, int(dbid))
        if media is None:
            log(f"library {kind} {dbid} changed but is not found", xbmc.LOGWARNING)
            return
        log(f"library {kind} {dbid} marked {'watched' if watched else 'unwatched'}")
        self.emit(MARKED_WATCHED if watched else MARKED_UNWATCHED, media)

    def retry_failed(self) -> None:
        worker = getattr(self.service, "worker", None)
        if worker is None:
            _notify("Sync is not running", error=True)
            return
        worker.retry_failed()
        log("retrying failed changes")
        _notify("Retrying failed changes")

    def show_status(self) -> None:
        lines = []
        service = self.service
        worker, queue = getattr(service, "worker", None), getattr(service, "queue", None)
        states = worker.server_states() if worker is not None else {}
        counts = queue.counts() if queue is not None else {}
        for source in sorted(set(states) | set(counts)):
            c = counts.get(source, {})
            lines.append(f"{source}: {states.get(source, 'unknown')} — pending {c.get('pending', 0)}, "
                         f"syncing {c.get('syncing', 0)}, failed {c.get('failed', 0)}, "
                         f"synced {c.get('synced', 0)}")
        text = "\n".join(lines) or "No server is configured."
        log("queue status: " + " / ".join(lines))
        xbmcgui.Dialog().textviewer("Playback Sync: queue", text)

    # -- main loop --------------------------------------------------------
    def run(self) -> None:
        home = xbmcgui.Window(10000)
        home.setProperty(RUNNING_PROPERTY, "1")
        try:
            self.start_service()
            while not self.monitor.waitForAbort(POLL_SECONDS):
                if self.reload_requested:
                    self.reload()
                self.player.poll()
        finally:
            # Quit during playback: no onPlayBackStopped comes, so the last position is flushed here.
            self.player.end("quit")
            self.stop_service()
            home.clearProperty(RUNNING_PROPERTY)
            log("service stopped")


def _python_ok() -> bool:
    if sys.version_info >= MIN_PYTHON:
        return True
    message = (f"needs Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or later (Kodi 21+); this Kodi has "
               f"{sys.version_info[0]}.{sys.version_info[1]}")
    log(message, xbmc.LOGERROR)
    _notify(message, error=True)
    return False


def run_service() -> None:
    import requests

    _install_logging()
    from .. import __version__
    import importlib.util
    libs = {name: os.path.dirname(importlib.util.find_spec(name).origin or "?")
            for name in ("playbacksync", "dataset", "sqlalchemy")}  # found, not imported: stays cheap
    log(f"version {__version__} starting; Python {sys.version.split()[0]}; "
        f"requests {requests.__version__} from {os.path.dirname(requests.__file__)}; libraries: {libs}")
    if _python_ok():
        KodiHost().run()


# -- settings dialog actions (RunScript(service.playbacksync,ACTION[,TYPE])) -------------
def run_action(argv) -> None:
    _install_logging()
    args = [a for a in argv[1:] if a]
    action = args[0] if args else ""
    server_type = args[1] if len(args) > 1 else ""
    if not _python_ok():
        return
    try:
        if action in ("retry", "status"):
            if not xbmcgui.Window(10000).getProperty(RUNNING_PROPERTY):
                xbmcgui.Dialog().ok("Playback Sync", "The Playback Sync service is not running.")
                return
            xbmc.executebuiltin(f"NotifyAll({ADDON_ID},{action})")
        elif action in ("", "settings"):  # started from Programs: open the settings
            xbmcaddon.Addon(ADDON_ID).openSettings()
        elif action == "test" and server_type in _SERVER_TYPES:
            _test_connection(server_type)
        elif action == "signin" and server_type in _SERVER_TYPES:
            _sign_in(server_type)
        else:
            log(f"unknown action {args}", xbmc.LOGERROR)
    except Exception as exc:
        log(f"{action} {server_type} failed: {exc}", xbmc.LOGERROR)
        xbmcgui.Dialog().ok("Playback Sync", redact(f"{action} {server_type}: {exc}"))


def _server(server_type: str):
    from ..settings import config_from_flat

    flat = read_flat_settings()
    flat[f"{server_type}_enabled"] = "true"  # test or sign in before enabling it
    config = config_from_flat(flat)
    server = next((s for s in config.servers if s.type == server_type), None)
    if server is None or not server.url:
        raise ValueError(f"set the {server_type} server URL first")
    return server


def _test_connection(server_type: str) -> None:
    from ..settings.actions import test_connection

    result = test_connection(_server(server_type))
    log(f"test {server_type}: {result}")
    xbmcgui.Dialog().ok("Playback Sync", redact(result))


def _sign_in(server_type: str) -> None:
    from ..settings import actions

    addon = xbmcaddon.Addon(ADDON_ID)
    server = _server(server_type)
    dialog = xbmcgui.Dialog()
    if server_type == "plex":
        _plex_sign_in(addon, server)
        return
    username = dialog.input("User name", server.username)
    if not username:
        return
    password = dialog.input("Password", option=xbmcgui.ALPHANUM_HIDE_INPUT)
    signed = actions.sign_in_password(server, username, password)
    addon.setSetting(f"{server_type}_username", username)
    addon.setSetting(f"{server_type}_user_id", signed.user_id)
    addon.setSetting(f"{server_type}_token", signed.token)
    dialog.ok("Playback Sync", f"Signed in to {server_type} as {username}.")


def _plex_sign_in(addon, server) -> None:
    from ..settings import actions

    pin_id, code = actions.plex_request_pin(server)
    progress = xbmcgui.DialogProgress()
    progress.create("Playback Sync", f"Go to plex.tv/link and enter the code [B]{code}[/B]")
    try:
        token = actions.plex_wait_for_token(server, pin_id, timeout=300, cancelled=progress.iscanceled,
                                            sleep=lambda seconds: xbmc.sleep(int(seconds * 1000)))
    except actions.ActionError:
        if progress.iscanceled():  # the viewer closed the code dialog: nothing to say
            return
        raise
    finally:
        progress.close()
    addon.setSetting("plex_token", token)
    xbmcgui.Dialog().ok("Playback Sync", "Signed in to Plex.")
