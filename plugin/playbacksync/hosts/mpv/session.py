"""One mpv player's events turned into PlaybackEvents: the part both transports share.

A transport (``embedded.py``: python-mpv in this process; ``ipc.py``: JSON IPC
to an mpv started elsewhere) calls the ``on_*`` methods from its event thread
and gives the session a way to read properties and send commands
(``Transport``). The session knows nothing of servers: events go to a
``sink`` (``SyncService.handle``), sync news comes back through ``subscribe``
and is shown on the OSD through the shared notification policy.

Cost: no per-frame work. The position is sampled once a second by a timer
thread (only while playing); pause, seeks, file changes and ends come from
mpv events and a few rarely-changing property observers; the Lua helper
reports the exact position just before a file unloads. Every position read
is checked against the playlist entry it belongs to (entry id read before
and after), so a sample taken while mpv switches files is dropped instead of
being credited to the wrong file.
"""
from __future__ import annotations

import functools
import logging
import threading
import time
from typing import Callable, Dict, Optional, Protocol

from ...fsnames import shown
from ...tracker.events import (ENDED, MARKED_UNWATCHED, MARKED_WATCHED, PAUSED, POSITION, RESUMED, SEEKED,
                               STARTED, MediaRef, PlaybackEvent, finite)
from .common import OSD_MS, OsdPolicy, redact_text, redact_url, resolve_path, shown_title, text

log = logging.getLogger(__name__)


class Transport(Protocol):
    """How a session reaches its mpv."""

    def get(self, name: str):
        """A property's value (number, flag, text), or None when unavailable or mpv is gone."""

    def get_name(self, name: str) -> str:
        """A path or title property as a str (file names that are not UTF-8 as the OS gives them)."""

    def command_async(self, *args: str) -> None:
        """Send a command without waiting; failures are logged, never raised."""

    def working_directory(self) -> Optional[str]:
        """The directory mpv resolves relative paths against."""


def guarded(method):
    """Callbacks run on the transport's event thread: log what they raise, never propagate it."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception:
            log.exception("playback-sync mpv callback %s failed", method.__name__)
    return wrapper


class _Entry:
    """What the session knows about the playlist entry being played."""

    def __init__(self, entry_id: int):
        self.id = entry_id
        self.media: Optional[MediaRef] = None  # set at file-loaded
        self.duration: Optional[float] = None
        self.position: Optional[float] = None  # last good sample
        self.paused = False
        self.ended = False  # ENDED sent (e.g. eof-reached with keep-open); a seek back reopens it
        self.first_frame = False
        self.seeking = False


class MpvSession:
    """Event translation, position sampling, keys and OSD for one mpv player.

    ``sink(event)``: every PlaybackEvent, serialized. ``subscribe(callback) ->
    unsubscribe``: sync news for the OSD. ``on_first_frame()``: once, when the
    first file shows its first frame. ``on_settings()``: the settings key, in
    its own thread, one at a time.
    """

    def __init__(self, transport: Transport, sink: Callable[[PlaybackEvent], None], *,
                 subscribe: Optional[Callable] = None, on_settings: Optional[Callable[[], None]] = None,
                 on_first_frame: Optional[Callable[[], None]] = None, notifications: str = "errors",
                 sample_interval: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.transport = transport
        self._sink = sink
        self._subscribe = subscribe
        self._on_settings = on_settings
        self._on_first_frame = on_first_frame
        self._osd = OsdPolicy(notifications)
        self._sample_interval = float(sample_interval)
        self._clock = clock
        self._lock = threading.RLock()
        self._entry: Optional[_Entry] = None
        self._unload_positions: Dict[int, Optional[float]] = {}
        self.loaded_any = False
        self.errors = 0
        self._first_frame_called = False
        self._stop = threading.Event()
        self._sampler: Optional[threading.Thread] = None
        self._settings_thread: Optional[threading.Thread] = None
        self._unsubscribe: Optional[Callable] = None

    # -- lifecycle --------------------------------------------------------------
    def start(self) -> None:
        """Subscribe to sync news and start the sampler."""
        if self._subscribe is not None:
            try:
                self._unsubscribe = self._subscribe(self._on_sync_message)
            except Exception:
                log.exception("could not subscribe to sync messages")
        self._sampler = threading.Thread(target=self._sample_loop, name="playback-sync-sampler", daemon=True)
        self._sampler.start()

    def stop_sampling(self) -> None:
        """mpv is shutting down: no more position reads."""
        self._stop.set()

    def stop(self) -> None:
        """Stop sampling and unsubscribe (the player is going away)."""
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join(2)
        if self._unsubscribe is not None:
            try:
                self._unsubscribe()
            except Exception:
                log.exception("could not unsubscribe from sync messages")
            self._unsubscribe = None

    def end_open_entry(self, reason: str = "quit") -> None:
        """The player is gone: an entry it never ended ends here, at the last position seen."""
        with self._lock:
            entry = self._entry
            if entry is not None and entry.media is not None and not entry.ended:
                self._end(entry, reason)

    def set_notifications(self, notifications: str, servers=None) -> None:
        self._osd = OsdPolicy(notifications, servers)

    # -- events in (transport's event thread) ------------------------------------
    @guarded
    def on_start_file(self, entry_id) -> None:
        with self._lock:
            self._entry = _Entry(int(entry_id))
        self._osd.new_file()

    @guarded
    def on_file_loaded(self) -> None:
        with self._lock:
            entry = self._entry
            if entry is None or entry.media is not None:
                return
            if self.playing_entry_id() != entry.id:
                return  # already gone: its end-file follows
            self._load(entry)

    def adopt(self) -> bool:
        """Attached mid-file (the IPC agent): take the entry playing now as if it had just loaded.

        Returns True if something was playing.
        """
        with self._lock:
            entry_id = self.playing_entry_id()
            if entry_id is None or self._entry is not None:
                return self._entry is not None
            entry = self._entry = _Entry(entry_id)
            if self.transport.get("time-pos") is None:  # still loading: its file-loaded follows
                return True
            self._load(entry)
            entry.first_frame = True
            return True

    def _load(self, entry: _Entry) -> None:
        path = resolve_path(self.transport.get_name("path"), self.transport.working_directory())
        title = self.transport.get_name("media-title")
        better = shown_title(path, title)
        if better is not None:  # keep the token out of the window title and OSD too
            title = better
            self.transport.command_async("set", "file-local-options/force-media-title", title)
        entry.media = MediaRef(path=path, title=title, entry_key=str(entry.id))
        entry.duration = finite(self.transport.get("duration"))
        entry.paused = bool(self.transport.get("pause"))
        self.loaded_any = True
        log.info("playing %s (entry %s)", redact_url(path), entry.id)
        self._emit(STARTED, entry, position=self.position_of(entry.id))
        if entry.paused:
            self._emit(PAUSED, entry)

    @guarded
    def on_seek(self) -> None:
        with self._lock:
            if self._entry is not None:
                self._entry.seeking = True

    @guarded
    def on_playback_restart(self) -> None:
        call_first = False
        with self._lock:
            entry = self._entry
            if entry is None or entry.media is None:
                return
            if not entry.first_frame:
                entry.first_frame = True
                call_first = not self._first_frame_called
                self._first_frame_called = True
            if entry.seeking:
                entry.seeking = False
                if not entry.ended:
                    position = self.position_of(entry.id)
                    if position is not None:
                        self._emit(SEEKED, entry, position=position)
        if call_first and self._on_first_frame is not None:
            try:
                self._on_first_frame()
            except Exception:
                log.exception("on_first_frame failed")

    @guarded
    def on_end_file(self, entry_id, reason, file_error=None) -> None:
        reason = reason or "stop"
        if reason == "error":
            self.errors += 1
            log.warning("mpv could not play entry %s: %s", entry_id, file_error or "error")
        with self._lock:
            entry = self._entry
            exact = self._unload_positions.pop(entry_id, None)
            if entry is None or entry.id != entry_id:
                return
            self._entry = None
            if entry.media is None or entry.ended:
                return
            if exact is not None:
                entry.position = exact
            self._end(entry, reason)

    @guarded
    def on_property(self, name: str, value) -> None:
        with self._lock:
            entry = self._entry
            if entry is None or entry.media is None:
                return
            if name == "duration":
                duration = finite(value)
                if duration is not None:
                    entry.duration = duration
            elif name == "pause":
                paused = bool(value)
                if paused == entry.paused:
                    return
                entry.paused = paused
                if not entry.ended:
                    self._emit(PAUSED if paused else RESUMED, entry, position=self.position_of(entry.id))
            elif name == "eof-reached":
                if value and not entry.ended:
                    if text(self.transport.get("keep-open") or "no") == "no":
                        return  # end-file follows, with the exact position where playback ended
                    # keep-open: mpv stays on the last frame, no end-file; the viewing is over.
                    # Where it ended decides whether it counts as the end (--end, a truncated file).
                    self._end(entry, "eof", position=self.position_of(entry.id))
                elif value is False and entry.ended:
                    # keep-open and the viewer went back: a new viewing of the same entry.
                    entry.ended = False
                    self._emit(STARTED, entry, position=self.position_of(entry.id))
                    if entry.paused:
                        self._emit(PAUSED, entry)

    @guarded
    def on_unload_message(self, entry_id=None, position=None, *_) -> None:
        with self._lock:
            try:
                key = int(text(entry_id))
            except (TypeError, ValueError):  # no id (after `stop`): the entry being unloaded is ours
                key = self._entry.id if self._entry is not None else None
            if key is not None:
                self._unload_positions[key] = finite(text(position)) if position else None

    @guarded
    def on_user_message(self, action=b"", *_) -> None:
        action = text(action)
        if action in ("mark-watched", "mark-unwatched"):
            self._mark(action == "mark-watched")
        elif action == "settings":
            self._open_settings()
        else:
            log.warning("unknown playback-sync action %r", action)

    def _mark(self, watched: bool) -> None:
        with self._lock:
            entry = self._entry
            if entry is None or entry.media is None:
                self.show("Playback Sync: nothing is playing")
                return
            position = self.position_of(entry.id)
            self._emit(MARKED_WATCHED if watched else MARKED_UNWATCHED, entry, position=position)
        self.show(f"Playback Sync: marked {'watched' if watched else 'unwatched'}")

    def _open_settings(self) -> None:
        if self._on_settings is None:
            self.show("Playback Sync: settings are not available here")
            return
        if self._settings_thread is not None and self._settings_thread.is_alive():
            return
        self.show("Playback Sync: opening settings")

        def run():
            try:
                self._on_settings()
            except Exception:
                log.exception("the settings dialog failed")
        self._settings_thread = threading.Thread(target=run, name="playback-sync-settings", daemon=True)
        self._settings_thread.start()

    # -- reading mpv -----------------------------------------------------------------
    def playing_entry_id(self) -> Optional[int]:
        index = self.transport.get("playlist-playing-pos")
        if index is None or index < 0:
            return None
        return self.transport.get(f"playlist/{index}/id")

    def position_of(self, entry_id: int) -> Optional[float]:
        """time-pos, only if it surely belongs to ``entry_id``."""
        if self.playing_entry_id() != entry_id:
            return None
        position = finite(self.transport.get("time-pos"))
        if self.playing_entry_id() != entry_id:
            return None
        return position

    # -- sampler thread --------------------------------------------------------------
    def _sample_loop(self) -> None:
        while not self._stop.wait(self._sample_interval):
            try:
                self._sample()
            except Exception:
                log.exception("position sample failed")

    def _sample(self) -> None:
        with self._lock:
            entry = self._entry
            if entry is None or entry.media is None or entry.paused or entry.ended:
                return
        position = self.position_of(entry.id)  # outside the lock: the event thread keeps going
        if position is None:
            return
        with self._lock:
            if self._entry is entry and not entry.paused and not entry.ended:
                self._emit(POSITION, entry, position=position)

    # -- events out -----------------------------------------------------------------
    def _emit(self, kind: str, entry: _Entry, *, position=None, reason=None) -> None:
        if position is not None:
            entry.position = position
        event = PlaybackEvent(kind, media=entry.media, position=entry.position if position is None else position,
                              duration=entry.duration, reason=reason, at=self._clock())
        try:
            self._sink(event)
        except Exception:
            log.exception("the sync sink failed on %s", kind)

    def _end(self, entry: _Entry, reason: str, position: Optional[float] = None) -> None:
        entry.ended = True
        self._emit(ENDED, entry, position=position, reason=reason)

    # -- OSD ------------------------------------------------------------------------
    def _on_sync_message(self, message) -> None:
        try:
            shown = self._osd.text_for(message)
            if shown:
                self.show(shown)
        except Exception:
            log.exception("could not show a sync message")

    def show(self, message: str) -> None:
        """A short OSD message (tokens redacted)."""
        self.transport.command_async("show-text", redact_text(shown(message)), str(OSD_MS))
