"""The embedded transport: mpv in this process through python-mpv (``playback-sync play``).

The only module that imports ``mpv`` (python-mpv, loaded late: it loads
libmpv). ``MpvHost`` starts a normal mpv window with the user's config and
feeds an ``MpvSession``; python-mpv's event thread calls the session.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from typing import Callable, Dict, Iterable, Optional

from ...fsnames import for_player
from ...tracker.events import PlaybackEvent
from .common import (DEFAULT_KEYS, KEY_SECTION, MESSAGE, OBSERVED, UNLOAD_HELPER, UNLOAD_MESSAGE, PlayerError,
                     fs_name, key_bindings, redact_text, resolve_path, text)
from .session import MpvSession, guarded

log = logging.getLogger(__name__)

SIGNAL_CHECK_S = 0.25  # how often the main thread wakes while mpv plays, to act on Ctrl+C

EXIT_OK, EXIT_NOTHING_PLAYED, EXIT_BAD_OPTIONS = 0, 1, 2
EXIT_NOT_RECORDED = 3  # played, but the queue could not record what was watched (the reason is printed)
# Tells an installed playback-sync.lua that this mpv already has its host (no agent needed).
HOST_OPT = "playback_sync-host=embedded"


def load_mpv():
    """python-mpv, or a PlayerError saying how to install libmpv."""
    try:
        import mpv
    except (ImportError, OSError) as exc:  # python-mpv present but libmpv missing raises OSError
        raise PlayerError("libmpv is not installed or could not be loaded (Debian/Ubuntu: sudo apt install "
                          f"libmpv2; macOS: brew install mpv): {type(exc).__name__}: {exc}") from None
    return mpv


class _PythonMpv:
    """The session's Transport over a python-mpv handle."""

    def __init__(self, mpv, player):
        self._mpv, self.player = mpv, player

    def get(self, name: str):
        player = self.player
        if player is None:
            return None
        try:
            return player._get_property(name, self._mpv.strict_decoder)
        except Exception:  # unavailable now, or mpv shut down
            return None

    def get_name(self, name: str) -> str:
        player = self.player
        if player is None:
            return ""
        try:
            value = player._get_property(name, self._mpv.lazy_decoder)
        except Exception:
            return ""
        return fs_name(value) if name == "path" else text(value or "")

    def command_async(self, *args: str) -> None:
        player = self.player
        if player is None:
            return
        try:
            player.command_async(*args, callback=_command_done)
        except Exception:
            log.debug("mpv did not take %s (shutting down?)", args[0])

    def working_directory(self) -> Optional[str]:
        # mpv opens relative paths from the process's directory (its working-directory
        # property can be stale), so resolve against that.
        return os.getcwd()


def _command_done(error, _result=None) -> None:
    if error is not None:
        log.warning("mpv refused a playback-sync command: %s", error)


class MpvHost:
    """One mpv player with sync tracking. ``start(targets)``, ``wait()``, ``close()``.

    Keywords as ``MpvSession`` (sink, subscribe, on_settings, on_first_frame,
    notifications, sample_interval, clock), plus mpv's options, its config
    folder and whether to read the user's config, and the keys.
    """

    def __init__(self, sink: Callable[[PlaybackEvent], None], *, mpv_options: Optional[Dict] = None,
                 config_dir: Optional[str] = None, use_config: bool = True,
                 keys: Optional[Dict[str, str]] = None, **session_options):
        self._mpv_options = dict(mpv_options or {})
        self._config_dir = config_dir
        self._use_config = use_config
        self._keys = dict(DEFAULT_KEYS if keys is None else keys)
        self._transport = _PythonMpv(None, None)
        self.session = MpvSession(self._transport, sink, **session_options)
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
        mpv = load_mpv()
        try:
            player = mpv.MPV(log_handler=self._mpv_log, loglevel="warn", **self.options())
        except (AttributeError, ValueError, TypeError, mpv.ShutdownError) as exc:
            raise PlayerError(_explain_option_error(exc)) from None
        self.player = self._transport.player = player
        self._transport._mpv = mpv
        self._mpv = mpv
        session = self.session
        player.register_message_handler(UNLOAD_MESSAGE, session.on_unload_message)
        player.register_message_handler(MESSAGE, session.on_user_message)
        player.register_event_callback(self._on_event)
        for name in OBSERVED:
            player.observe_property(name, session.on_property)
        try:  # before any file loads: an installed playback-sync.lua then leaves this mpv to us
            player.command("change-list", "script-opts", "append", HOST_OPT)
        except Exception:
            log.debug("could not set %s", HOST_OPT)
        # Before the first file: the Lua helper gives the exact position where each entry ended
        # (the end of file counts as the end only near the duration). Without it the last 1 s
        # sample stands in.
        self._transport.command_async("load-script", UNLOAD_HELPER)
        for target in targets:
            # a name that is not UTF-8 goes to mpv as its bytes (python-mpv's loadfile would refuse it)
            player.command("loadfile", for_player(resolve_path(target, os.getcwd())), "append-play")
        # The rest is asynchronous, so it does not hold up the first frame. The keys are an input
        # section with the "default" flag: a binding of the same key in the user's input.conf wins.
        self._transport.command_async("define-section", KEY_SECTION, key_bindings(self._keys), "default")
        self._transport.command_async("enable-section", KEY_SECTION, "allow-hide-cursor+allow-vo-dragging")
        session.start()

    def set_notifications(self, notifications: str, servers: Optional[Iterable[str]] = None) -> None:
        """Which sync messages reach the OSD (all | errors | off; only about ``servers``), once the config is read."""
        self.session.set_notifications(notifications, servers)

    def show_message(self, message: str) -> None:
        """A short OSD message (tokens redacted)."""
        self.session.show(message)

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until mpv shuts down (quit, window closed, playlist done); True if it did.

        Ctrl+C quits mpv cleanly (end position reported) and re-raises KeyboardInterrupt.
        """
        player = self.player
        if player is None:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            # In short waits: Python runs a signal's handler in the main thread only when that thread
            # runs, and the kernel may deliver Ctrl+C's SIGINT to one of libmpv's threads; a single
            # untimed wait then slept through it until the file ended (seen in the suite).
            while True:
                step = SIGNAL_CHECK_S if deadline is None else min(SIGNAL_CHECK_S, deadline - time.monotonic())
                if step <= 0:
                    return False
                try:
                    player.wait_for_shutdown(timeout=step)
                    break
                except TimeoutError:
                    continue
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
        self.session.stop()
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
            self.player = self._transport.player = None
            player.terminate()
        self.session.end_open_entry("quit")
        return EXIT_OK if self.session.loaded_any or not self.session.errors else EXIT_NOTHING_PLAYED

    # -- python-mpv's event thread ---------------------------------------------------
    @guarded
    def _on_event(self, event) -> None:
        ids = self._mpv.MpvEventID
        name = event.event_id.value
        session = self.session
        if name == ids.START_FILE:
            session.on_start_file(event.data.playlist_entry_id)
        elif name == ids.FILE_LOADED:
            session.on_file_loaded()
        elif name == ids.SEEK:
            session.on_seek()
        elif name == ids.PLAYBACK_RESTART:
            session.on_playback_restart()
        elif name == ids.END_FILE:
            data = event.as_dict(decoder=self._mpv.lazy_decoder)
            session.on_end_file(data.get("playlist_entry_id"), data.get("reason"), data.get("file_error"))
        elif name == ids.SHUTDOWN:
            session.stop_sampling()

    def _mpv_log(self, level, prefix, line) -> None:
        try:
            line = redact_text(line).rstrip()
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
    names = [text(x) for x in detail[1:3] if isinstance(x, bytes)]
    if len(names) == 2:
        return f"mpv refused --{names[0]}={redact_text(names[1])}: {what}"
    return f"mpv could not start: {what}"


def run_player(targets: Iterable[str], mpv_options: Optional[Dict] = None,
               sink: Optional[Callable[[PlaybackEvent], None]] = None, **host_options) -> int:
    """Play ``targets`` in mpv until it quits; returns an exit code.

    0 played; 1 nothing could be played; 2 mpv refused an option (message on stderr).
    ``host_options`` are MpvHost's keywords.
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

