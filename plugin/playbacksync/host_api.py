"""What a player host may ask of the sync service, beside handing it events (app.py).

Hosts never touch ``.worker`` or ``.queue``: status, retry, sync now, drain at
quit, and the user's pause go through these methods, which ``SyncService``
has. They read the service's parts and start nothing themselves.
"""
from __future__ import annotations

import threading
import time
from typing import Dict, Optional

# drain() wakes on the worker's events; this covers a close made without one (a change
# superseded in a batch), so the wait is never longer than this after the last close.
DRAIN_HEARTBEAT_S = 0.25


class ServerStatus:
    """One server as ``SyncService.status()`` reports it: ``state`` and ``counts`` (by row status)."""

    def __init__(self, server_id: str, state: str, counts: Dict[str, int]):
        self.server_id, self.state, self.counts = server_id, state, counts

    def waiting(self) -> int:
        """Rows not yet on the server (pending or being sent)."""
        return self.counts.get("pending", 0) + self.counts.get("syncing", 0)

    def __repr__(self):
        return f"ServerStatus({self.server_id!r}, {self.state!r}, {self.counts!r})"


class HostApi:
    """Mixed into ``SyncService``: uses its ``config``, ``worker``, ``queue``, ``subscribe``,
    ``_started``/``_start_error``, ``_inbox`` and ``_data_folder()``."""

    def running(self) -> bool:
        """True once the queue and worker are up (a host may ask before: answers are empty then)."""
        return self._started.is_set() and self._start_error is None and self.worker is not None

    def status(self) -> Dict[str, "ServerStatus"]:
        """Per server (configured or still holding rows): its state and its queue counts.

        State: online | offline | paused | auth_required | unknown, or ``not running`` before
        the service is up. Counts: pending, syncing, synced, failed.
        """
        worker, queue = self.worker, self.queue
        if not self.running() or worker is None or queue is None:
            return {s.id: ServerStatus(s.id, "not running", {}) for s in self.config.enabled_servers()}
        states = worker.server_states()
        counts = queue.counts()
        ids = sorted(set(states) | set(counts) | {s.id for s in self.config.enabled_servers()})
        return {sid: ServerStatus(sid, states.get(sid, "unknown"), dict(counts.get(sid, {}))) for sid in ids}

    def retry_failed(self, server_id: Optional[str] = None) -> int:
        """Failed changes (of one server, or all) go back to pending and are sent now; how many."""
        worker = self.worker
        if not self.running() or worker is None:
            return 0
        n = worker.retry_failed(server_id)
        worker.process_now()
        return n

    def sync_now(self) -> bool:
        """Send what is queued now: skip backoff, probe offline servers. False if not running yet."""
        worker = self.worker
        if not self.running() or worker is None:
            return False
        worker.process_now()
        return True

    def drain(self, timeout: float) -> bool:
        """Queue what was handed over, then send until nothing waits for a reachable server.

        For a host whose player is gone (mpv's agent after mpv quit). Returns True if
        everything was sent within ``timeout``; what is left stays queued.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        barrier = threading.Event()
        self._inbox.put(("barrier", barrier))
        if not barrier.wait(max(0.0, deadline - time.monotonic())) or not self.running():
            return False
        changed = threading.Event()
        unsubscribe = self.subscribe(lambda event: changed.set())
        try:
            self.sync_now()
            enabled = {s.id for s in self.config.enabled_servers()}
            while True:
                changed.clear()
                left = [s for sid, s in self.status().items() if sid in enabled and s.waiting()]
                if not left:
                    return True
                if all(s.state in ("offline", "auth_required", "paused") for s in left):
                    return False  # nothing more will go out now
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                # Woken by the worker's events (a change closed, a server's state changed); the
                # heartbeat covers closes made without one.
                changed.wait(min(remaining, DRAIN_HEARTBEAT_S))
        finally:
            unsubscribe()

    def pause(self, server_id: Optional[str] = None) -> None:
        """Stop sending (to one server, or all) for this run; what is queued waits."""
        if self.worker is not None:
            self.worker.pause(server_id)

    def resume(self, server_id: Optional[str] = None) -> None:
        if self.worker is not None:
            self.worker.resume(server_id)

    # -- the user's pause (queue/pause.py): every process, across restarts, until resumed --
    def paused(self) -> frozenset:
        """Server ids the user paused ("*" = all); the OSD and Kodi show it."""
        from .queue import pause

        return pause.paused_servers(self._data_folder())

    def set_paused(self, server_id: Optional[str], paused: bool) -> None:
        """Pause or resume one server (or all, None) for good; the worker holds or sends at once."""
        from .queue import pause

        pause.set_paused(self._data_folder(), server_id, paused, all_servers=[s.id for s in self.config.servers])
        if self.worker is not None and not paused:
            self.worker.notify()
