"""``playback-sync play``: mpv in this process, with the sync service started after the first frame."""
from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Callable, Dict, List, Optional

from ...tracker.events import PlaybackEvent
from .args import parse_mpv_args
from .common import PlayerError, edit_settings
from .embedded import EXIT_BAD_OPTIONS, EXIT_NOT_RECORDED, MpvHost

log = logging.getLogger(__name__)


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
        try:  # what the dialog saved applies at once, to the file playing too
            config = edit_settings(locations)
        except Exception as exc:
            log.error("settings not reloaded: %s", exc)
            host.show_message(f"Playback Sync: settings not reloaded: {exc}")
            return
        host.set_notifications(config.sync.notifications, [s.id for s in config.enabled_servers()])
        with lock:
            service = state["service"]
        if service is not None:
            service.reload(config)

    locations = None  # set once mpv is started (the settings key needs it only later)
    host = MpvHost(late, mpv_options=options, subscribe=late.subscribe, on_first_frame=first_frame,
                   on_settings=open_settings, config_dir=os.environ.get("PLAYBACK_SYNC_MPV_CONFIG_DIR") or None)
    try:
        host.start(list(args.targets) + more_targets)
    except PlayerError as exc:
        print(f"playback-sync: {exc}", file=sys.stderr)
        host.close()
        return EXIT_BAD_OPTIONS
    # Imported only now, so reading them does not delay mpv's start (first frame).
    from ...app import SyncService
    from ...settings.locate import Locations

    locations = Locations.from_args(args)
    service = failure = None
    try:
        try:
            config = locations.load_config()
            host.set_notifications(config.sync.notifications, [s.id for s in config.enabled_servers()])
            service = SyncService(config, locations.data_dir_override())
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
