"""Sending a write at most once: how long a send may still land, and keeping its claim alive.

See the worker's docstring (worker.py) for the whole exactly-once design.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable, List, Optional

log = logging.getLogger(__name__)

# Past the request's own timeouts, how long a server may still be applying a write it received.
SEND_MARGIN = 5.0
# When the backend does not say its timeouts (a test double): a generous window.
DEFAULT_WINDOW = 120.0


def send_window(backend, override: Optional[float] = None, *, requests: int = 1) -> float:
    """Seconds after a send starts until that send surely cannot land any more.

    Each request is bounded by connect + read timeout; a change that takes
    two requests (a position: Emby's read-modify-write, Jellyfin 10.8's
    session pair) gets twice that. ``SEND_MARGIN`` covers a server still
    busy with a request whose client gave up.
    """
    if override is not None:
        return max(0.0, float(override))
    timeout = getattr(getattr(backend, "http", None), "timeout", None)
    try:
        connect, read = timeout
        return max(1, requests) * (float(connect) + float(read)) + SEND_MARGIN
    except (TypeError, ValueError):
        return DEFAULT_WINDOW


class LeaseHeartbeat:
    """While a batch is being sent, renews the queue's claim on its rows every ``interval`` s.

    A send may outlive the claim's lease (a slow server, a long batch); without
    renewal another process would take the row over and send it again. One
    loop with a stop event, ended by ``stop()`` within its timeout.
    """

    def __init__(self, queue, ids: Callable[[], List[int]], interval: float, name: str):
        self.queue = queue
        self.ids = ids
        self.interval = max(0.05, float(interval))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> "LeaseHeartbeat":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            ids = self.ids()
            if not ids:
                continue
            try:
                self.queue.extend_lease(ids)
            except Exception as exc:  # the next beat tries again; the lease still covers a while
                log.warning("could not renew the claim on %d change(s): %s", len(ids), exc)

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
