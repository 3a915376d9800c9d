"""The service add-on's loop: SyncService fed by the player, settings reloaded, messages shown.

Runs once per Kodi profile (Kodi stops and starts services when the profile
changes); the queue, settings and tokens live in that profile's add-on data
folder, so what one profile plays never reaches another profile's servers.
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
import time

from ...notify_policy import ERROR_KINDS, NotifyPolicy
from ...tracker.events import MARKED_UNWATCHED, MARKED_WATCHED, STARTED, PlaybackEvent
from . import kodi_api
from .player import KodiPlayer, library_media
from .settings import load_config

POLL_SECONDS = 1.0
RUNNING_PROPERTY = "playbacksync.running"  # on the home window: the actions ask if the service runs
# What the actions (another process) ask of the running service, through NotifyAll.
REQUESTS = ("retry", "status", "sync")


class _Monitor(kodi_api.Monitor):
    def __init__(self, host: "KodiService"):
        super().__init__()
        self.host = host

    def onSettingsChanged(self):
        self.host.reload_requested = True

    def onNotification(self, sender, method, data):
        try:
            self.host.on_notification(sender, method, data)
        except Exception as exc:  # a bad notification must not end the service
            kodi_api.log(f"notification {method} not handled: {exc}", kodi_api.WARNING)


class KodiService:
    def __init__(self):
        self.policy = NotifyPolicy("errors")
        self.monitor = _Monitor(self)
        self.player = KodiPlayer(self.emit, on_new_file=lambda: self.policy.new_file())
        self.service = None
        self.reload_requested = False
        self._unsubscribe = None

    # -- lifecycle ------------------------------------------------------------------
    def _config(self):
        """The add-on's settings as a Config, or None when they are not usable (said so)."""
        config, problem = load_config()
        if config is None:
            kodi_api.log(f"settings not usable: {problem}", kodi_api.ERROR)
            kodi_api.notify(problem, error=True)
            return None
        self.policy = NotifyPolicy(config.sync.notifications, [s.id for s in config.enabled_servers()])
        servers = ", ".join(f"{s.id} ({s.type}) {s.url}" for s in config.enabled_servers()) or "none"
        kodi_api.log(f"starting sync; servers: {servers}; queue in {kodi_api.profile_dir()}")
        return config

    def start_service(self) -> None:
        from ...app import SyncService

        config = self._config()
        if config is None:
            return
        self.service = SyncService(config, kodi_api.profile_dir())
        self._unsubscribe = self.service.subscribe(self.on_sync_message)
        self.service.start()

    def stop_service(self) -> None:
        if self.service is None:
            return
        service, self.service = self.service, None
        clean = service.stop(timeout=3.0)
        if self._unsubscribe:
            self._unsubscribe()
        kodi_api.log("sync stopped" + ("" if clean else " (the worker had not finished; the queue keeps the rest)"))

    def reload(self) -> None:
        self.reload_requested = False
        kodi_api.log("settings changed: reloading")
        if self.service is not None:
            config = self._config()
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

    def on_sync_message(self, message) -> None:
        kind = getattr(message, "kind", "")
        level = kodi_api.WARNING if kind in ERROR_KINDS else kodi_api.INFO
        kodi_api.log(f"sync {kind} {getattr(message, 'source_id', None)}: {getattr(message, 'message', '')}", level)
        notice = self.policy.notice_for(message)
        if notice:
            kodi_api.notify(notice.text, error=notice.error)

    # -- Kodi's notifications and the actions' requests ------------------------------------
    def on_notification(self, sender, method, data) -> None:
        if method == "VideoLibrary.OnUpdate":
            self._library_update(json.loads(data or "{}"))
            return
        request = method.rsplit(".", 1)[-1]
        if sender == kodi_api.ADDON_ID and request in REQUESTS:
            threading.Thread(target=self.answer, args=(request,), daemon=True).start()

    def answer(self, request: str) -> None:
        """An action's request, run in the service (it holds the queue and the worker)."""
        service = self.service
        if service is None or not service.running():
            kodi_api.ok("Sync is not running: check the server settings.")
        elif request == "retry":
            n = service.retry_failed()
            kodi_api.log(f"retrying failed changes: {n}")
            kodi_api.notify(f"Sending {n} failed change{'s' * (n != 1)} again." if n else "No change had failed.")
        elif request == "sync":
            service.sync_now()
            kodi_api.log("sync now")
            kodi_api.notify("Sending the queued changes now.")
        elif request == "status":
            text = status_text(service.status())
            kodi_api.log("queue status: " + " / ".join(text.splitlines()))
            kodi_api.text_viewer("queue", text)
            kodi_api.open_settings()  # the status was asked from the settings dialog: back there

    def _library_update(self, payload: dict) -> None:
        if "playcount" not in payload or payload.get("added") or payload.get("transaction"):
            return
        item = payload.get("item") or {}
        kind, dbid = item.get("type"), item.get("id")
        if kind not in ("movie", "episode") or dbid is None:
            return
        watched = int(payload["playcount"]) > 0
        if watched and self.player.own_count(kind, dbid):
            kodi_api.log(f"library {kind} {dbid}: play count from playback, already tracked")
            return
        media = library_media(kind, int(dbid))
        if media is None:
            kodi_api.log(f"library {kind} {dbid} changed but is not found", kodi_api.WARNING)
            return
        kodi_api.log(f"library {kind} {dbid} marked {'watched' if watched else 'unwatched'}")
        self.emit(MARKED_WATCHED if watched else MARKED_UNWATCHED, media)

    # -- main loop ----------------------------------------------------------------------
    def run(self) -> None:
        kodi_api.set_home_property(RUNNING_PROPERTY, "1")
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
            kodi_api.clear_home_property(RUNNING_PROPERTY)
            kodi_api.log("service stopped")


def status_text(statuses) -> str:
    """The queue status view: one line per server, in words."""
    lines = []
    for sid in sorted(statuses):
        s = statuses[sid]
        c = s.counts
        lines.append(f"{sid}: {s.state}. Waiting {c.get('pending', 0) + c.get('syncing', 0)}, "
                     f"failed {c.get('failed', 0)}, synced {c.get('synced', 0)}.")
    return "\n".join(lines) or "No server is turned on in the settings."


def run_service() -> None:
    import requests

    kodi_api.install_logging()
    from ... import __version__

    libs = {name: os.path.dirname(importlib.util.find_spec(name).origin or "?")
            for name in ("playbacksync", "dataset", "sqlalchemy")}  # found, not imported: stays cheap
    kodi_api.log(f"version {__version__} starting; Python {sys.version.split()[0]}; "
                 f"requests {requests.__version__} from {os.path.dirname(requests.__file__)}; libraries: {libs}; "
                 f"profile {kodi_api.profile_name()!r}; data in {kodi_api.profile_dir()}")
    KodiService().run()
