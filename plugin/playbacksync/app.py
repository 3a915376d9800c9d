"""The sync service a host runs: tracker → queue → worker (which identifies, then sends).

Hosts call ``handle(event)`` from their player's callback thread. That call
only runs the tracker (pure, microseconds) and hands what it decides to the
service thread, which records each change at once in the queue, one row per
enabled server, against the media reference (path or URL, title, provider
ids, kind, duration), and wakes the worker. Record first, resolve later:
nothing waits for identification, so a slow, failed or recently stopped
index refresh can no longer drop a viewing; the worker resolves the
reference to the server's item as a step of syncing (worker/resolve.py).
So the player never waits on the network, and only briefly on the disk.

``stop()`` drains that hand-off before stopping the worker: every change the
tracker produced is in the queue before the process exits. When the queue
cannot take it (a storage fault that outlasts the quit), the changes are
lost and ``unrecorded()`` says how many and why, so ``play`` can say so and
exit non-zero. Journals that older versions left are imported once at
start (legacy_journal.py).
"""
from __future__ import annotations

import logging
import os
import queue as _stdqueue
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

from .config import Config
from .host_api import HostApi
from .messages import ServiceMessage
from .recording import Recorder
from .tracker.events import STARTED, MediaRef, PlaybackEvent

log = logging.getLogger(__name__)

_STOP = object()


class SyncService(HostApi):
    FLUSH_SECONDS = 20.0  # at quit, how long recording may hold the exit (a queue locked by another program)

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
        self._recorder = Recorder(lambda: self.config.enabled_servers(), self._emit)
        self._folder: Optional[str] = None
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

        Queuing is local and takes milliseconds; a queue locked by another
        program may hold the exit up to ``flush_timeout`` (FLUSH_SECONDS).
        What could not be recorded by then is counted in ``unrecorded()``.
        """
        if self._thread is None:
            return True
        self._inbox.put(_STOP)
        self._thread.join(max(0.1, self.FLUSH_SECONDS if flush_timeout is None else flush_timeout))
        clean = not self._thread.is_alive()
        if not clean or self._start_error is not None:  # stuck, or never opened the queue
            self._give_up()
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

    def _give_up(self) -> None:
        """Quit with changes the queue could not take: count them, say why (``unrecorded``)."""
        not_taken = 0
        while True:
            try:
                item = self._inbox.get_nowait()
            except _stdqueue.Empty:
                break
            if item is not _STOP and item[0] == "change":
                not_taken += max(1, len(self.config.enabled_servers()))
        why = self._start_error or self._recorder.last_storage_error or "the queue did not answer in time"
        self._recorder.give_up(not_taken, str(why))

    def unrecorded(self) -> Tuple[int, str]:
        """(how many changes this service could not record, why): ``play`` exits non-zero on them."""
        return self._recorder.unrecorded()

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
                self._inbox.put(("prefetch", event.media))
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
        self._recorder.queue = self.queue
        if self.queue.damage:  # the viewer must hear of it, not only the log
            self._emit(ServiceMessage("failed", None, self.queue.damage.message()))
        self._connect()
        self._import_legacy_journals()
        self._refresh_for_waiting()

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
        self.identifier = Identifier(self.config, self.backends, ItemIndex.open_or_temporary(self._folder))
        options = {"unidentified_after": self.config.sync.unidentified_days * 86400.0, **self._worker_options}
        self.worker = SyncWorker(self.queue, self.backends, identifier=self.identifier, **options)
        self._recorder.on_saved = self.worker.notify
        # Changes waiting to identify go out as soon as their server's index is refreshed.
        self.identifier.on_refreshed.append(self.worker.index_refreshed)
        self.identifier.on_replaced.append(self.worker.server_replaced)
        self.identifier.refresh_stale()  # a stale index fills while the first seconds play
        self._worker_unsubs = {cb: self.worker.subscribe(cb) for cb in self._subscribers}
        self._start_live()
        self.worker.start()

    def _refresh_for_waiting(self) -> None:
        """Changes an earlier run could not identify: refresh their servers' index now, once,
        even if its last refresh failed moments ago (that run may have quit right after it)."""
        try:
            waiting = {r.source_id for r in self.queue.rows(statuses=("pending",)) if not r.resolved}
        except Exception as exc:  # reading the queue failed: the worker will say so when it claims
            log.warning("could not look for changes waiting to identify: %s", exc)
            return
        for server_id in sorted(waiting & set(self.backends)):
            self.identifier.refresh(server_id, wait=False)

    def _start_live(self) -> None:
        """Live sessions on the servers; the worker asks the reporter before each write so nothing a
        live report set is written twice. The reporter resolves items on its own thread."""
        from .live import LiveReporter

        def matched_item(server_id: str, media: MediaRef) -> Optional[str]:
            identifier = self.identifier  # the current one (a settings reload replaces it)
            return identifier.identify_one(server_id, media, wait=0).item_id if identifier is not None else None

        worker = self.worker
        self.live = LiveReporter(self.backends, matched_item, progress_interval=self.config.sync.progress_interval,
                                 held=lambda sid: worker.server_states().get(sid) in ("paused", "auth_required"),
                                 state_path=os.path.join(self._folder, "live-sessions.json"))
        self.worker.live_cover = self.live.cover
        self.worker.live_reported = self.live.reported
        self.live.start()

    def _import_legacy_journals(self) -> None:
        """Queue what older versions left in their journal files, each file once (legacy_journal.py)."""
        from . import legacy_journal
        from .queue import QueueError

        try:
            legacy_journal.import_leftovers(self._folder, self.queue, self._recorder.changes_for,
                                            tell=lambda text: self._emit(ServiceMessage("failed", None, text)))
        except QueueError as exc:  # kept on disk: the next start tries again
            log.error("could not queue the changes an older version left: %s", exc)

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
            recorder = self._recorder
            try:  # with changes waiting for a locked or full disk, wake to try them again
                item = self._inbox.get(timeout=recorder.RETRY_SAVE_SECONDS if recorder.holding else None)
            except _stdqueue.Empty:
                item = None
            recorder.save()
            if item is _STOP:
                recorder.save(final=True)
                return
            if item is None:
                continue
            try:
                kind, payload = item
                if kind == "barrier":  # drain(): everything handed over before it is queued
                    payload.set()
                elif kind == "prefetch":
                    self._prefetch(payload)
                elif kind == "reload":
                    self._apply_reload(payload)
                else:
                    recorder.record(payload)
            except Exception:
                log.exception("could not record a playback change")

    def _prefetch(self, media: MediaRef) -> None:
        """A file started: look it up now (never waiting), so a refresh its miss needs is
        under way by the time its first change is synced."""
        for server_id in self.backends:
            self.identifier.identify_one(server_id, media, wait=0, confirm=False)  # a lookup: no request

    def _emit(self, message) -> None:
        for callback in list(self._subscribers):
            try:
                callback(message)
            except Exception:
                log.exception("a sync subscriber failed")

    def _data_folder(self) -> str:
        from .paths import data_dir

        return self._folder or data_dir(self.data_dir)


def set_paused_in(data_dir: str, server_id: Optional[str], paused: bool) -> None:
    """Pause or resume syncing of a data folder from a process that runs no service (Kodi's
    settings actions): kept over restarts; a running service's worker reads it before each send."""
    from .queue import pause

    pause.set_paused(data_dir, server_id, paused)
