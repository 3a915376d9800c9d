"""The sync service a host runs: tracker → identification → queue → worker.

Hosts call ``handle(event)`` from their player's callback thread. That call
only runs the tracker (pure, microseconds) and hands what it decides to the
service thread, which identifies the item on each server (cached per file),
writes the changes to the queue and wakes the worker. So the player never
waits on the network or the disk.

``stop()`` drains that hand-off before stopping the worker: every change the
tracker produced is in the queue before the process exits, or, when the queue
cannot take it (a file still waiting on a slow first identification, a
storage fault), in the journal that the next start queues (journal.py).
"""
from __future__ import annotations

import logging
import os
import queue as _stdqueue
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

from .config import Config, ServerConfig
from .tracker import TrackedChange
from .tracker.events import STARTED, MediaRef, PlaybackEvent

log = logging.getLogger(__name__)

_STOP = object()


def media_key(media: MediaRef) -> Tuple:
    """A hashable key for one thing played (MediaRef holds a dict)."""
    return (media.path, tuple(sorted(media.provider_ids.items())))


class ServiceMessage:
    """A message for the viewer that is not about a queued change (e.g. not identified)."""

    def __init__(self, kind: str, source_id: Optional[str], message: str):
        self.kind, self.source_id, self.message, self.change = kind, source_id, message, None

    def __repr__(self):
        return f"ServiceMessage({self.kind!r}, {self.source_id!r}, {self.message!r})"


class SyncService:
    RETRY_SAVE_SECONDS = 0.5
    FLUSH_SECONDS = 20.0  # at quit, how long a slow first identification may hold the exit

    def __init__(self, config: Config, data_dir: Optional[str] = None, *, wall_clock=time.time,
                 worker_options: Optional[dict] = None, queue_options: Optional[dict] = None):
        from .tracker import Tracker

        self.config = config
        self.data_dir = data_dir
        self._tracker = Tracker(progress_interval=config.sync.progress_interval,
                                watched_percent=config.sync.watched_percent, wall_clock=wall_clock)
        self._worker_options = dict(worker_options or {})
        self._queue_options = dict(queue_options or {})
        self._inbox: "_stdqueue.Queue" = _stdqueue.Queue()
        self._subscribers: List[Callable] = []
        self._worker_unsubs: Dict[Callable, Callable] = {}  # subscriber -> its worker unsubscribe
        self._unsaved: List = []  # changes made but not yet in the queue (storage fault)
        self._current = None  # the tracked change being identified right now
        self._write_lock = threading.Lock()  # queue writes vs. stop() giving up on the service thread
        self._abandoned = False
        self._folder: Optional[str] = None
        self._told_storage = False
        self._matches: Dict[Tuple, Dict] = {}
        self._told_unmatched: set = set()
        self._thread: Optional[threading.Thread] = None
        self._started = threading.Event()
        self._start_error: Optional[BaseException] = None
        self.queue = None
        self.worker = None
        self.identifier = None
        self.live = None  # live "now playing" sessions (live/reporter.py), fed the same events
        self.backends: Dict[str, object] = {}

    # -- lifecycle -------------------------------------------------------
    def start(self) -> None:
        """Start the service thread; it opens the queue and starts the worker itself."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="playback-sync-service", daemon=True)
        self._thread.start()

    def wait_ready(self, timeout: Optional[float] = None) -> bool:
        """Wait until the queue and worker are up (tests, CLI commands)."""
        self._started.wait(timeout)
        if self._start_error is not None:
            raise self._start_error
        return self._started.is_set()

    def stop(self, timeout: float = 3.0, flush_timeout: Optional[float] = None) -> bool:
        """Queue every change handed over so far, then stop the worker within ``timeout``.

        Queuing is local and takes milliseconds, unless a file's first
        identification is still waiting for the server's item list: that may
        hold the exit up to ``flush_timeout`` (FLUSH_SECONDS). What is still
        unidentified then goes to the journal and is queued at the next start.
        """
        if self._thread is None:
            return True
        self._inbox.put(_STOP)
        self._thread.join(max(0.1, self.FLUSH_SECONDS if flush_timeout is None else flush_timeout))
        clean = not self._thread.is_alive()
        if not clean or self._start_error is not None:  # stuck, or never opened the queue
            self._journal_leftovers()
        deadline = time.monotonic() + timeout
        if self.identifier is not None:
            self._close_identifier()
        if self.live is not None:  # the last Stopped reports go first, within the deadline's first half
            self.live.stop(max(0.1, (deadline - time.monotonic()) / 2))
        if self.worker is not None:
            clean = self.worker.stop(max(0.1, deadline - time.monotonic())) and clean
        if self.queue is not None:
            self.queue.close()
        return clean

    def _journal_leftovers(self) -> None:
        from . import journal

        with self._write_lock:
            self._abandoned = True  # the service thread writes nothing from now on
            left = list(self._unsaved) + ([self._current] if self._current is not None else [])
        while True:
            try:
                item = self._inbox.get_nowait()
            except _stdqueue.Empty:
                break
            if item is not _STOP and item[0] == "change":
                left.append(item[1])
        if self._folder is None:
            log.error("%d playback change(s) lost: the sync service never started", len(left))
            return
        try:
            journal.write(self._folder, left)
        except OSError as exc:
            log.error("%d playback change(s) lost: %s", len(left), exc)

    def reload(self, config: Config) -> None:
        """New settings while playing (the settings dialog was saved).

        Servers, path mappings and options change at once; the viewing in
        progress goes on (the tracker keeps its state), and what is queued is
        sent with the new settings. Runs on the service thread, in order with
        the changes handed over before it.
        """
        self._inbox.put(("reload", config))

    def _apply_reload(self, config: Config) -> None:
        self.config = config
        self._tracker.progress_interval = float(config.sync.progress_interval)
        self._tracker.watched_percent = float(config.sync.watched_percent)
        if self.worker is None:  # not open yet: _open reads self.config
            return
        self.queue.retention_days = float(config.sync.retention_days)
        if self.live is not None:
            self.live.stop(1.0)
        self.worker.stop(3.0)  # requests in flight go back to pending for the new worker
        self._close_identifier()
        for backend in self.backends.values():
            backend.close()
        self._matches.clear()
        self._told_unmatched.clear()
        self._connect()
        log.info("settings reloaded: servers %s", ", ".join(sorted(self.backends)) or "none")

    def _close_identifier(self) -> None:
        if self.identifier.close(0.2):  # a refresh still winding down keeps its connection
            self.identifier.index.close()

    # -- host side -------------------------------------------------------
    def handle(self, event: PlaybackEvent) -> None:
        """Take one playback event. Cheap, never raises (it runs on the player's thread)."""
        try:
            if event.kind == STARTED and event.media is not None:
                self._inbox.put(("identify", event.media))
            for tracked in self._tracker.handle(event):
                self._inbox.put(("change", tracked))
            live = self.live
            if live is not None:
                live.handle(event)
        except Exception:  # a bug here must not take the player down
            log.exception("could not handle playback event %s", event.kind)

    def subscribe(self, callback: Callable) -> Callable[[], None]:
        """callback(event) for worker events and service messages; returns an unsubscribe."""
        self._subscribers.append(callback)
        if self.worker is not None:
            self._worker_unsubs[callback] = self.worker.subscribe(callback)

        def unsubscribe():
            if callback in self._subscribers:
                self._subscribers.remove(callback)
            self._worker_unsubs.pop(callback, lambda: None)()
        return unsubscribe

    # -- service thread --------------------------------------------------
    def _open(self) -> None:
        from .paths import data_dir
        from .queue import SyncQueue

        folder = self._folder = data_dir(self.data_dir)
        self.queue = SyncQueue(folder, retention_days=self.config.sync.retention_days, **self._queue_options)
        if self.queue.moved_aside:  # the viewer must hear of it, not only the log
            self._emit(ServiceMessage("failed", None, f"the sync queue file was damaged: moved it to "
                                      f"{self.queue.moved_aside} and started a new queue"))
        self._connect()
        self._replay_journal()

    def _connect(self) -> None:
        """Backends, identification and the worker for the current config."""
        from .backends import make_backend
        from .identify import Identifier, ItemIndex
        from .worker import SyncWorker

        self.backends = {}
        for server in self.config.enabled_servers():
            try:
                self.backends[server.id] = make_backend(server)
            except Exception as exc:  # a bad server entry must not stop the others
                self._emit(ServiceMessage("failed", server.id, f"server {server.id}: {exc}"))
        self.identifier = Identifier(self.config, self.backends, ItemIndex(self._folder))
        self.identifier.refresh_stale()  # a stale index fills while the first seconds play
        self.worker = SyncWorker(self.queue, self.backends, **self._worker_options)
        self._worker_unsubs = {cb: self.worker.subscribe(cb) for cb in self._subscribers}
        self._start_live()
        self.worker.start()

    def _start_live(self) -> None:
        """Live sessions on the servers, for the items identification has already matched; the worker
        asks the reporter before each write so nothing a live report set is written twice."""
        from .live import LiveReporter

        def matched_item(server_id: str, media: MediaRef) -> Optional[str]:
            match = (self._matches.get(media_key(media)) or {}).get(server_id)
            return getattr(match, "item_id", None)

        worker = self.worker
        self.live = LiveReporter(self.backends, matched_item, progress_interval=self.config.sync.progress_interval,
                                 held=lambda sid: worker.server_states().get(sid) in ("paused", "auth_required"),
                                 state_path=os.path.join(self._folder, "live-sessions.json"))
        self.worker.live_cover = self.live.cover
        self.live.start()

    def _replay_journal(self) -> None:
        """Queue what an earlier run could not identify before it quit (journal.py)."""
        from . import journal

        items, claimed = journal.claim(self._folder)
        for item in items:
            if isinstance(item, TrackedChange):
                self._enqueue(item)
            else:
                self._unsaved.append(item)
        self._save_unsaved()
        if claimed and not self._unsaved:
            os.remove(claimed)
        elif claimed:
            log.error("journal %s kept: its changes could not all be queued yet", claimed)

    def _run(self) -> None:
        try:
            self._open()
        except BaseException as exc:
            self._start_error = exc
            log.error("sync service could not start: %s", exc)
            self._emit(ServiceMessage("failed", None, f"sync is off: {exc}"))
            self._started.set()
            return
        self._started.set()
        while True:
            try:  # with changes waiting for a locked or full disk, wake to try them again
                item = self._inbox.get(timeout=self.RETRY_SAVE_SECONDS if self._unsaved else None)
            except _stdqueue.Empty:
                item = None
            self._save_unsaved()
            if item is _STOP:
                self._save_unsaved(final=True)
                return
            if item is None:
                continue
            try:
                kind, payload = item
                if kind == "identify":
                    self._identify(payload)
                elif kind == "reload":
                    self._apply_reload(payload)
                else:
                    self._enqueue(payload)
            except Exception:
                log.exception("could not record a playback change")

    def _identify(self, media: MediaRef) -> Dict:
        key = media_key(media)
        matches = self._matches.get(key)
        if matches is None:
            matches = self.identifier.identify(media)
            if all(m.item_id for m in matches.values()):
                self._matches[key] = matches  # misses are asked again: the index may have been refreshed
        return matches

    def _enqueue(self, tracked) -> None:
        from .changes import Change

        self._current = tracked
        matches = self._identify(tracked.media)
        if not matches and "no servers" not in self._told_unmatched:
            self._told_unmatched.add("no servers")
            self._emit(ServiceMessage("not_identified", None, "no server is configured: nothing is synced"))
        made = []
        for server_id, match in matches.items():
            server = self.config.server(server_id)
            if match.item_id is None or server is None:
                told = (media_key(tracked.media), server_id)
                if told not in self._told_unmatched:
                    self._told_unmatched.add(told)
                    self._emit(ServiceMessage("not_identified", server_id, match.reason))
                continue
            made.append(Change(
                media_item_id=match.item_id, source_id=server_id, user_id=_user_of(server),
                change_type=tracked.change_type, position_ms=tracked.position_ms,
                duration_ms=tracked.duration_ms, completed=tracked.change_type == "mark_watched",
                created_at=tracked.created_at))
        with self._write_lock:
            if self._abandoned:  # stop() journaled this change already
                return
            self._unsaved.extend(made)
            self._current = None
        self._save_unsaved()

    def _save_unsaved(self, final: bool = False) -> None:
        """Write held changes in order; on a storage fault keep them and try again later.

        A change the queue refused (locked past its busy timeout, disk full,
        read-only) stays in memory and is written when the fault clears; only
        a process that dies while the fault lasts loses it, and the viewer was told.
        """
        from .queue import QueueError

        tries = 3 if final else 1
        while self._unsaved and tries:
            try:
                with self._write_lock:
                    if self._abandoned:
                        return
                    self.queue.enqueue_change(self._unsaved[0])
                    self._unsaved.pop(0)
            except QueueError as exc:
                tries -= 1
                if not self._told_storage:
                    self._told_storage = True
                    log.error("could not save a playback change (kept, will retry): %s", exc)
                    self._emit(ServiceMessage("failed", None, f"a change could not be saved yet: {exc}"))
                if tries and final:
                    time.sleep(self.RETRY_SAVE_SECONDS)
                continue
            self._told_storage = False
            self.worker.notify()
        if final and self._unsaved:  # the queue is still unusable: keep them for the next start
            from . import journal

            with self._write_lock:
                self._abandoned, left, self._unsaved = True, list(self._unsaved), []
            try:
                journal.write(self._folder, left)
            except OSError as exc:
                log.error("%d playback change(s) could not be saved before exit: %s", len(left), exc)

    def _emit(self, message) -> None:
        for callback in list(self._subscribers):
            try:
                callback(message)
            except Exception:
                log.exception("a sync subscriber failed")


def _user_of(server: ServerConfig) -> str:
    return server.user_id or server.username or ""
