"""mpv host: plays in a normal mpv window (python-mpv) and reports PlaybackEvents.

The only module that imports ``mpv``. It knows nothing of servers: events go
to a ``sink`` (``SyncService.handle``), sync news comes back through
``subscribe`` and is shown on the OSD.

Cost: no per-frame Python. The position is sampled once a second by a timer
thread (only while playing); pause, seeks, file changes and ends come from
mpv events and a few rarely-changing property observers; a tiny Lua script
(playback_sync.lua) reports the exact position just before a file unloads.
Every callback runs guarded: an exception is logged, never raised into
python-mpv's event thread.

Every position read is checked against the playlist entry it belongs to
(entry id read before and after), so a sample taken while mpv switches
files is dropped instead of being credited to the wrong file.
"""
from __future__ import annotations

import functools
import logging
import os
import re
import sys
import threading
import time
from typing import Callable, Dict, Iterable, List, Optional, Tuple
from urllib.parse import urlsplit

try:
    import mpv
except (ImportError, OSError) as _exc:  # python-mpv present but libmpv missing raises OSError
    mpv = None
    _MPV_MISSING = f"{type(_exc).__name__}: {_exc}"

from ..fsnames import for_player, shown
from ..tracker.events import (ENDED, MARKED_UNWATCHED, MARKED_WATCHED, PAUSED, POSITION, RESUMED, SEEKED,
                              STARTED, MediaRef, PlaybackEvent, finite)

log = logging.getLogger(__name__)

LUA_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "playback_sync.lua")

# Free in mpv's default bindings (Alt+s is screenshot each-frame, Ctrl+w quit, w/W panscan).
DEFAULT_KEYS = {"mark-watched": "Alt+w", "mark-unwatched": "Alt+u", "settings": "Alt+o"}
MESSAGE = "playback-sync"  # input.conf: `KEY script-message playback-sync mark-watched`

EXIT_OK, EXIT_NOTHING_PLAYED, EXIT_BAD_OPTIONS = 0, 1, 2
EXIT_NOT_RECORDED = 3  # played, but the queue could not record what was watched (the reason is printed)
OSD_MS = 4000

_KEY = re.compile(r"^[\w+\-]+$")  # a key name as input.conf writes it; nothing that could add a command
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


class PlayerError(Exception):
    """mpv could not be set up (e.g. an option it does not know); the message says which."""


# -- small pure helpers (tested without a player) --------------------------------

def redact_url(url: str) -> str:
    """A URL fit for logs and the OSD: no user info, query or fragment (tokens live there)."""
    if not isinstance(url, str) or not _SCHEME.match(url):
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return url.split("?", 1)[0].split("#", 1)[0]
    if ":" in host:
        host = f"[{host}]"
    hidden = "?…" if parts.query or parts.fragment else ""
    return f"{parts.scheme}://{host}{port}{parts.path}{hidden}"


def redact_text(text: str) -> str:
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), str(text))


def resolve_path(path: str, working_directory: Optional[str]) -> str:
    """A played path made absolute against ``working_directory``; URLs as they are."""
    if not path or _SCHEME.match(path) or path == "-":
        return path
    if not os.path.isabs(path) and working_directory:
        path = os.path.join(working_directory, path)
    return os.path.normpath(path)


def parse_mpv_args(args: Iterable[str]) -> Tuple[Dict[str, str], List[str]]:
    """mpv command-line style options -> (python-mpv options, remaining targets).

    ``--key=value`` sets key; ``--flag`` sets it to yes; ``--no-flag`` to no;
    anything not starting with ``--`` is a target; ``--`` ends options.
    """
    options: Dict[str, str] = {}
    targets: List[str] = []
    only_targets = False
    for arg in args:
        if only_targets or not arg.startswith("--") or arg == "-":
            targets.append(arg)
        elif arg == "--":
            only_targets = True
        else:
            key, eq, value = arg[2:].partition("=")
            if not key:
                raise PlayerError(f"cannot read the mpv option {arg!r}")
            if not eq:
                key, value = (key[3:], "no") if key.startswith("no-") else (key, "yes")
            options[key] = value
    return options, targets


class OsdPolicy:
    """Which sync messages reach the OSD: few, and each once (per file, or until it changes).

    ``notifications``: ``all`` (also watched/unwatched synced), ``errors``
    (failures, offline, sign-in needed, not identified), ``off``.
    """

    def __init__(self, notifications: str = "errors"):
        self.notifications = notifications if notifications in ("all", "errors", "off") else "errors"
        self._shown: set = set()
        self._offline: set = set()
        self._lock = threading.Lock()  # the worker's thread and mpv's event thread both call in

    def new_file(self) -> None:
        with self._lock:
            self._shown = {k for k in self._shown if k[0] in ("offline", "auth_required")}

    def text_for(self, message) -> Optional[str]:
        with self._lock:
            return self._text_for(message)

    def _text_for(self, message) -> Optional[str]:
        if self.notifications == "off":
            return None
        kind = getattr(message, "kind", None)
        source = getattr(message, "source_id", None) or "sync"
        detail = redact_text(getattr(message, "message", "") or "")
        if kind == "completed":
            change = getattr(getattr(message, "change", None), "change_type", None)
            if self.notifications != "all" or change not in ("mark_watched", "mark_unwatched"):
                return None
            what = "watched" if change == "mark_watched" else "unwatched"
            return self._once(("completed", source, what), f"Playback Sync: marked {what} on {source}")
        if kind == "offline":
            self._offline.add(source)
            return self._once(("offline", source),
                              f"Playback Sync: {source} is offline, changes are kept and sent later")
        if kind == "online":
            if source not in self._offline:
                return None
            self._offline.discard(source)
            self._shown.discard(("offline", source))
            return f"Playback Sync: {source} is back online"
        if kind == "auth_required":
            return self._once(("auth_required", source),
                              f"Playback Sync: {source} needs you to sign in again (playback-sync login)")
        if kind == "failed":
            return self._once(("failed", source), f"Playback Sync: {source}: {detail}")
        if kind == "not_identified":
            return self._once(("not_identified", source), f"Playback Sync: not synced to {source}: {detail}")
        return None

    def _once(self, key, text: str) -> Optional[str]:
        if key in self._shown:
            return None
        self._shown.add(key)
        return text


def _guarded(method):
    """Callbacks run on python-mpv's event thread: log what they raise, never propagate it."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception:
            log.exception("playback-sync mpv callback %s failed", method.__name__)
    return wrapper


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _fs(value) -> str:
    """A file name from mpv: bytes that are not UTF-8 become the str the OS would give."""
    if value is None:
        return ""
    return os.fsdecode(value) if isinstance(value, bytes) else str(value)


class _Entry:
    """What the host knows about the playlist entry being played."""

    def __init__(self, entry_id: int):
        self.id = entry_id
        self.media: Optional[MediaRef] = None  # set at file-loaded
        self.duration: Optional[float] = None
        self.position: Optional[float] = None  # last good sample
        self.paused = False
        self.ended = False  # ENDED sent (e.g. eof-reached with keep-open); a seek back reopens it
        self.first_frame = False
        self.seeking = False


class MpvHost:
    """One mpv player with sync tracking. ``start(targets)``, ``wait()``, ``close()``.

    ``sink(event)``: gets every PlaybackEvent, serialized (never two at once).
    ``subscribe(callback) -> unsubscribe``: sync news (WorkerEvent-like objects
    with kind, source_id, message, change) for the OSD.
    ``on_first_frame()``: called once, on the event thread, when the first
    file shows its first frame (the CLI starts the sync service there, off
    the path to the first frame). ``on_settings()``: the settings key; runs
    in its own thread, one at a time.
    """

    def __init__(self, sink: Callable[[PlaybackEvent], None], *, mpv_options: Optional[Dict] = None,
                 config_dir: Optional[str] = None, use_config: bool = True,
                 subscribe: Optional[Callable] = None, on_settings: Optional[Callable[[], None]] = None,
                 on_first_frame: Optional[Callable[[], None]] = None, notifications: str = "errors",
                 keys: Optional[Dict[str, str]] = None, sample_interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        self._sink = sink
        self._mpv_options = dict(mpv_options or {})
        self._config_dir = config_dir
        self._use_config = use_config
        self._subscribe = subscribe
        self._on_settings = on_settings
        self._on_first_frame = on_first_frame
        self._osd = OsdPolicy(notifications)
        self._keys = dict(DEFAULT_KEYS if keys is None else keys)
        self._sample_interval = float(sample_interval)
        self._clock = clock
        self._lock = threading.RLock()
        self._entry: Optional[_Entry] = None
        self._unload_positions: Dict[int, Optional[float]] = {}
        self._loaded_any = False
        self._errors = 0
        self._first_frame_called = False
        self._stop = threading.Event()
        self._sampler: Optional[threading.Thread] = None
        self._settings_thread: Optional[threading.Thread] = None
        self._unsubscribe: Optional[Callable] = None
        self.player = None  # mpv.MPV once started

    # -- lifecycle --------------------------------------------------------------
    def options(self) -> Dict[str, str]:
        """What python-mpv is given: a normal mpv with the user's config, then the user's options."""
        opts: Dict[str, object] = {"config": self._use_config, "osc": True, "input_default_bindings": True,
                                   "input_vo_keyboard": True, "idle": "once"}
        if self._config_dir:
            opts["config_dir"] = self._config_dir
        # No mpv terminal output: its error lines print URLs whole, tokens included. mpv's errors
        # reach stderr through _mpv_log, redacted; --terminal=yes brings mpv's own output back.
        opts["terminal"] = False
        for key, value in self._mpv_options.items():
            opts[key.replace("-", "_")] = value
        return opts

    def start(self, targets: Iterable[str]) -> None:
        targets = list(targets)
        if mpv is None:
            raise PlayerError("libmpv is not installed or could not be loaded (Debian/Ubuntu: "
                              f"sudo apt install libmpv2; macOS: brew install mpv): {_MPV_MISSING}")
        try:
            player = mpv.MPV(log_handler=self._mpv_log, loglevel="warn", **self.options())
        except (AttributeError, ValueError, TypeError, mpv.ShutdownError) as exc:
            raise PlayerError(_explain_option_error(exc)) from None
        self.player = player
        player.register_message_handler("playback-sync-unload", self._on_unload_message)
        player.register_message_handler(MESSAGE, self._on_user_message)
        player.register_event_callback(self._on_event)
        for name in ("pause", "eof-reached", "duration"):
            player.observe_property(name, self._on_property)
        for target in targets:
            # a name that is not UTF-8 goes to mpv as its bytes (python-mpv's loadfile would refuse it)
            player.command("loadfile", for_player(resolve_path(target, os.getcwd())), "append-play")
        # The rest is asynchronous, so it does not hold up the first frame. The keys are an input
        # section with the "default" flag: a binding of the same key in the user's input.conf wins.
        bindings = "\n".join(f"{key} script-message {MESSAGE} {action}"
                              for action, key in self._keys.items() if key and _KEY.match(key))
        player.command_async("define-section", "playback-sync", bindings, "default",
                             callback=self._command_done)
        player.command_async("enable-section", "playback-sync", "allow-hide-cursor+allow-vo-dragging",
                             callback=self._command_done)
        # Without the Lua helper the last 1 s sample stands in for the exact end position.
        player.command_async("load-script", LUA_SCRIPT, callback=self._command_done)
        if self._subscribe is not None:
            try:
                self._unsubscribe = self._subscribe(self._on_sync_message)
            except Exception:
                log.exception("could not subscribe to sync messages")
        self._sampler = threading.Thread(target=self._sample_loop, name="playback-sync-sampler", daemon=True)
        self._sampler.start()

    def set_notifications(self, notifications: str) -> None:
        """Which sync messages reach the OSD (all | errors | off), e.g. once the config is read."""
        self._osd = OsdPolicy(notifications)

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until mpv shuts down (quit, window closed, playlist done); True if it did.

        Ctrl+C quits mpv cleanly (end position reported) and re-raises KeyboardInterrupt.
        """
        player = self.player
        if player is None:
            return True
        try:
            player.wait_for_shutdown(timeout=timeout)
        except TimeoutError:
            return False
        except KeyboardInterrupt:
            # Quit the way the q key does, so the last position is reported, then let it propagate.
            log.info("interrupted: quitting mpv")
            self.quit()
            try:
                player.wait_for_shutdown(timeout=5)
            except Exception:
                pass
            raise
        return True

    def quit(self) -> None:
        try:
            if self.player is not None:
                self.player.quit()
        except Exception:
            pass

    def close(self) -> int:
        """Stop sampling, shut mpv down, report an end for an entry mpv never ended. Returns an exit code."""
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join(2)
        if self._unsubscribe is not None:
            try:
                self._unsubscribe()
            except Exception:
                log.exception("could not unsubscribe from sync messages")
            self._unsubscribe = None
        player = self.player
        if player is not None:
            if not player.core_shutdown:
                # Still playing (wait timed out): quit as the q key does, so the end is reported, and
                # only then let go of the handle (python-mpv property reads need a live core).
                self.quit()
                try:
                    player.wait_for_shutdown(timeout=5)
                except Exception:
                    pass
            self.player = None
            player.terminate()
        with self._lock:
            entry = self._entry
            if entry is not None and entry.media is not None and not entry.ended:
                self._end(entry, "quit")
        return EXIT_OK if self._loaded_any or not self._errors else EXIT_NOTHING_PLAYED

    # -- reading mpv ----------------------------------------------------------------
    def _get(self, name: str, decoder=None):
        player = self.player
        if player is None:
            return None
        try:
            return player._get_property(name, decoder or mpv.strict_decoder)
        except Exception:  # unavailable now, or mpv shut down
            return None

    def _set_async(self, name: str, value: str) -> None:
        player = self.player
        if player is not None:
            try:
                player.command_async("set", name, value)
            except Exception:
                log.debug("could not set %s", name)

    def _playing_entry_id(self) -> Optional[int]:
        index = self._get("playlist-playing-pos")
        if index is None or index < 0:
            return None
        return self._get(f"playlist/{index}/id")

    def _position_of(self, entry_id: int) -> Optional[float]:
        """time-pos, only if it surely belongs to ``entry_id``."""
        if self._playing_entry_id() != entry_id:
            return None
        position = finite(self._get("time-pos"))
        if self._playing_entry_id() != entry_id:
            return None
        return position

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

    def _end(self, entry: _Entry, reason: str) -> None:
        entry.ended = True
        self._emit(ENDED, entry, reason=reason)

    # -- mpv callbacks (event thread) -------------------------------------------------
    @_guarded
    def _on_event(self, event) -> None:
        name = event.event_id.value
        if name == mpv.MpvEventID.START_FILE:
            self._on_start_file(event.data.playlist_entry_id)
        elif name == mpv.MpvEventID.FILE_LOADED:
            self._on_file_loaded()
        elif name == mpv.MpvEventID.SEEK:
            with self._lock:
                if self._entry is not None:
                    self._entry.seeking = True
        elif name == mpv.MpvEventID.PLAYBACK_RESTART:
            self._on_playback_restart()
        elif name == mpv.MpvEventID.END_FILE:
            data = event.as_dict(decoder=mpv.lazy_decoder)
            self._on_end_file(data.get("playlist_entry_id"), data.get("reason"), data.get("file_error"))
        elif name == mpv.MpvEventID.SHUTDOWN:
            self._stop.set()

    def _on_start_file(self, entry_id) -> None:
        with self._lock:
            self._entry = _Entry(int(entry_id))
        self._osd.new_file()

    def _on_file_loaded(self) -> None:
        with self._lock:
            entry = self._entry
            if entry is None or entry.media is not None:
                return
            if self._playing_entry_id() != entry.id:
                return  # already gone: its end-file follows
            # mpv opens relative paths from the process's directory (its working-directory
            # property can be stale), so resolve against that.
            path = resolve_path(_fs(self._get("path", mpv.lazy_decoder)), os.getcwd())
            title = _text(self._get("media-title", mpv.lazy_decoder) or "")
            if _SCHEME.match(path) and "?" in title:
                # mpv fell back to the URL's file name, query (token) included: keep it out of the
                # window title and OSD too.
                title = redact_url(title) if _SCHEME.match(title) else title.split("?", 1)[0]
                self._set_async("file-local-options/force-media-title", title)
            entry.media = MediaRef(path=path, title=title, entry_key=str(entry.id))
            entry.duration = finite(self._get("duration"))
            entry.paused = bool(self._get("pause"))
            self._loaded_any = True
            log.info("playing %s (entry %s)", redact_url(path), entry.id)
            self._emit(STARTED, entry, position=self._position_of(entry.id))
            if entry.paused:
                self._emit(PAUSED, entry)

    def _on_playback_restart(self) -> None:
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
                    position = self._position_of(entry.id)
                    if position is not None:
                        self._emit(SEEKED, entry, position=position)
        if call_first and self._on_first_frame is not None:
            try:
                self._on_first_frame()
            except Exception:
                log.exception("on_first_frame failed")

    def _on_end_file(self, entry_id, reason, file_error) -> None:
        reason = reason or "stop"
        if reason == "error":
            self._errors += 1
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

    @_guarded
    def _on_property(self, name: str, value) -> None:
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
                    self._emit(PAUSED if paused else RESUMED, entry, position=self._position_of(entry.id))
            elif name == "eof-reached":
                if value and not entry.ended:
                    # keep-open: mpv stays on the last frame, no end-file; the viewing is over.
                    self._end(entry, "eof")
                elif value is False and entry.ended:
                    # keep-open and the viewer went back: a new viewing of the same entry.
                    entry.ended = False
                    self._emit(STARTED, entry, position=self._position_of(entry.id))
                    if entry.paused:
                        self._emit(PAUSED, entry)

    @_guarded
    def _on_unload_message(self, entry_id=None, position=None, *_):
        with self._lock:
            try:
                key = int(_text(entry_id))
            except (TypeError, ValueError):  # no id (after `stop`): the entry being unloaded is ours
                key = self._entry.id if self._entry is not None else None
            if key is not None:
                self._unload_positions[key] = finite(_text(position)) if position else None

    @_guarded
    def _on_user_message(self, action=b"", *_):
        self._act(_text(action))

    def _command_done(self, error, _result=None) -> None:
        if error is not None:
            log.warning("mpv refused a playback-sync setup command: %s", error)

    def _act(self, action: str) -> None:
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
                self._show("Playback Sync: nothing is playing")
                return
            position = self._position_of(entry.id)
            self._emit(MARKED_WATCHED if watched else MARKED_UNWATCHED, entry, position=position)
        self._show(f"Playback Sync: marked {'watched' if watched else 'unwatched'}")

    def _open_settings(self) -> None:
        if self._on_settings is None:
            self._show("Playback Sync: settings are not available here")
            return
        if self._settings_thread is not None and self._settings_thread.is_alive():
            return
        self._show("Playback Sync: opening settings")

        def run():
            try:
                self._on_settings()
            except Exception:
                log.exception("the settings dialog failed")
        self._settings_thread = threading.Thread(target=run, name="playback-sync-settings", daemon=True)
        self._settings_thread.start()

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
        position = self._position_of(entry.id)  # outside the lock: the event thread keeps going
        if position is None:
            return
        with self._lock:
            if self._entry is entry and not entry.paused and not entry.ended:
                self._emit(POSITION, entry, position=position)

    # -- OSD ------------------------------------------------------------------------
    def _on_sync_message(self, message) -> None:
        try:
            text = self._osd.text_for(message)
            if text:
                self._show(text)
        except Exception:
            log.exception("could not show a sync message")

    def show_message(self, text: str) -> None:
        """A short OSD message (tokens redacted)."""
        self._show(text)

    def _show(self, text: str) -> None:
        player = self.player
        if player is None:
            return
        try:
            player.command_async("show-text", redact_text(shown(text)), str(OSD_MS))
        except Exception:
            pass  # mpv is shutting down

    def _mpv_log(self, level, prefix, text) -> None:
        try:
            line = redact_text(text).rstrip()
            if level in ("fatal", "error"):
                log.error("mpv %s: %s", prefix, line)
                print(f"mpv: {line}", file=sys.stderr)
            else:
                log.warning("mpv %s: %s", prefix, line)
        except Exception:
            pass


def _explain_option_error(exc: Exception) -> str:
    args = getattr(exc, "args", ())
    what = args[0] if args else str(exc)
    detail = args[2] if len(args) > 2 and isinstance(args[2], tuple) else ()
    names = [_text(x) for x in detail[1:3] if isinstance(x, bytes)]
    if len(names) == 2:
        return f"mpv refused --{names[0]}={redact_text(names[1])}: {what}"
    return f"mpv could not start: {what}"


def run_player(targets: Iterable[str], mpv_options: Optional[Dict] = None,
               sink: Optional[Callable[[PlaybackEvent], None]] = None, **host_options) -> int:
    """Play ``targets`` in mpv until it quits; returns an exit code.

    0 played; 1 nothing could be played; 2 mpv refused an option (message on stderr).
    ``host_options`` are MpvHost's keywords (config_dir, subscribe, on_settings, on_first_frame,
    notifications, keys, sample_interval, use_config).
    """
    host = MpvHost(sink or (lambda event: None), mpv_options=mpv_options, **host_options)
    try:
        host.start(targets)
    except PlayerError as exc:
        print(f"playback-sync: {exc}", file=sys.stderr)
        host.close()
        return EXIT_BAD_OPTIONS
    try:
        host.wait()
    finally:
        code = host.close()
    return code


class LateSink:
    """Sink and subscribe point for a service that exists only later.

    Events wait here, in order, until ``attach(handle, subscribe)``; then they
    are handed over and later ones go straight through. Subscriptions made
    before that are passed on at attach.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._handle: Optional[Callable] = None
        self._subscribe: Optional[Callable] = None
        self._buffer: List[PlaybackEvent] = []
        self._waiting: List[Callable] = []
        self._unsubscribes: Dict[int, Callable] = {}

    def __call__(self, event: PlaybackEvent) -> None:
        with self._lock:
            if self._handle is None:
                self._buffer.append(event)
                return
            handle = self._handle
        handle(event)

    def attach(self, handle: Callable, subscribe: Optional[Callable] = None) -> None:
        with self._lock:  # under the lock, so no event overtakes the buffered ones
            for event in self._buffer:
                handle(event)
            self._buffer = []
            self._handle, self._subscribe = handle, subscribe
            waiting, self._waiting = self._waiting, []
            if subscribe is not None:
                for callback in waiting:
                    self._unsubscribes[id(callback)] = subscribe(callback)

    def subscribe(self, callback: Callable) -> Callable[[], None]:
        with self._lock:
            if self._subscribe is not None:
                self._unsubscribes[id(callback)] = self._subscribe(callback)
            else:
                self._waiting.append(callback)

        def unsubscribe():
            with self._lock:
                if callback in self._waiting:
                    self._waiting.remove(callback)
                undo = self._unsubscribes.pop(id(callback), None)
            if undo is not None:
                undo()
        return unsubscribe

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._buffer)


def play(args, mpv_args: List[str], *, on_first_frame: Optional[Callable[[], None]] = None) -> int:
    """``playback-sync play``: the CLI's entry (args from cli.build_parser, mpv_args its leftovers).

    mpv starts first; the config is read and the sync service made while the
    first frame is on its way (events wait in a LateSink), and the service
    (database, network) starts only after the first frame. A config that
    cannot be used quits the player and raises ConfigError (CLI: exit 2).
    """
    from .. import cli

    try:
        options, more_targets = parse_mpv_args(mpv_args)
    except PlayerError as exc:
        print(f"playback-sync: {exc}", file=sys.stderr)
        return EXIT_BAD_OPTIONS
    late = LateSink()
    lock = threading.Lock()
    state = {"service": None, "first_frame": False, "started": False}

    def start_service(force: bool = False):
        with lock:
            service = state["service"]
            if service is None or state["started"] or not (force or state["first_frame"]):
                return
            state["started"] = True
        service.start()

    def first_frame():
        if on_first_frame is not None:  # bench/tests: when the first frame showed
            on_first_frame()
        with lock:
            state["first_frame"] = True
        start_service()

    def open_settings():
        import subprocess

        cmd = [sys.executable, "-m", "playbacksync.cli"]
        if getattr(args, "config", None):
            cmd += ["--config", args.config]
        subprocess.run(cmd + ["settings"], check=False)
        try:  # what the dialog saved applies at once, to the file playing too
            config = cli.load_config(args)
        except Exception as exc:
            log.error("settings not reloaded: %s", exc)
            host.show_message(f"Playback Sync: settings not reloaded: {exc}")
            return
        host.set_notifications(config.sync.notifications)
        with lock:
            service = state["service"]
        if service is not None:
            service.reload(config)

    host = MpvHost(late, mpv_options=options, subscribe=late.subscribe, on_first_frame=first_frame,
                   on_settings=open_settings, config_dir=os.environ.get("PLAYBACK_SYNC_MPV_CONFIG_DIR") or None)
    try:
        host.start(list(args.targets) + more_targets)
    except PlayerError as exc:
        print(f"playback-sync: {exc}", file=sys.stderr)
        host.close()
        return EXIT_BAD_OPTIONS
    service = failure = None
    try:
        try:
            from ..app import SyncService

            config = cli.load_config(args)
            host.set_notifications(config.sync.notifications)
            service = SyncService(config, cli._data_dir(args))
        except BaseException:
            host.quit()
            raise
        late.attach(service.handle, service.subscribe)
        with lock:
            state["service"] = service
        start_service()  # if the first frame came while the config was read
        host.wait()
    finally:
        code = host.close()
        if service is not None:
            start_service(force=True)  # quit before the first frame: what happened must still be stored
            try:
                service.wait_ready(10)
            except Exception as exc:
                log.error("sync service failed: %s", exc)
                failure = exc
            service.stop(3.0)
    if failure is not None:  # nothing of this viewing could be recorded: the CLI says why, exit non-zero
        raise failure
    lost, why = service.unrecorded() if service is not None else (0, "")
    if lost:  # the viewer must see it, and scripts must not take it for success
        print(f"playback-sync: {lost} change(s) of this viewing could not be recorded: {why}", file=sys.stderr)
        return EXIT_NOT_RECORDED
    return code
