"""Helpers for the worker tests and bench (no tests here): a settable clock,
fake servers wired to real backends, and waiting for the queue to settle."""
from __future__ import annotations

import threading
import time
from typing import Callable, List, Optional

from playbacksync.backends import make_backend
from playbacksync.changes import PROGRESS, UNWATCHED, WATCHED, Change
from playbacksync.config import ServerConfig
from tests.fakes.jellyfin import JellyfinFake
from tests.fakes.mediabrowser import TICKS_PER_SECOND

T0 = 1_750_000_000.0


class FakeClock:
    """Wall-clock seconds that only move when told (shared by queue, worker and fakes)."""

    def __init__(self, start: float = T0):
        self._t = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._t

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._t += seconds
            return self._t


class Server:
    """One Jellyfin fake with a user, items and a backend for it."""

    def __init__(self, source_id: str = "jf", items: int = 3, clock: Optional[Callable[[], float]] = None,
                 version: str = "10.10.7", read_timeout: float = 5.0, keep_alive: bool = False):
        self.source_id = source_id
        self.fake = JellyfinFake(version=version, keep_alive=keep_alive).start()
        if clock is not None:
            self.fake.now = clock
        self.user_id = self.fake.add_user("alice", "pass")
        self.token = self.fake.issue_token(self.user_id)
        self.items = [self.fake.add_item(f"Item {i}", path=f"/m/{i}.mkv", runtime_s=3600) for i in range(items)]
        self.read_timeout = read_timeout

    def config(self, token: Optional[str] = None) -> ServerConfig:
        return ServerConfig(id=self.source_id, type="jellyfin", url=self.fake.url,
                            token=self.token if token is None else token, user_id=self.user_id,
                            device_id="worker-test", connect_timeout=1.0, read_timeout=self.read_timeout)

    def backend(self, token: Optional[str] = None):
        return make_backend(self.config(token))

    def change(self, item: int, kind: str, *, position_s: float = 0, created_at: float) -> Change:
        return Change(media_item_id=self.items[item], source_id=self.source_id, user_id=self.user_id,
                      change_type=kind, position_ms=int(position_s * 1000) if kind == PROGRESS else None,
                      duration_ms=3_600_000, completed=kind == WATCHED, created_at=created_at)

    def state(self, item: int):
        return self.fake.user_data(self.user_id, self.items[item])

    def position_s(self, item: int) -> float:
        return self.state(item).position_ticks / TICKS_PER_SECOND

    def played_requests(self, item: Optional[int] = None, method: str = "POST") -> int:
        """How many times a played mark reached the fake (the applications we count)."""
        with self.fake.lock:
            reqs = list(self.fake.requests)
        ids = set(self.items) if item is None else {self.items[item]}
        return sum(1 for r in reqs if r.method == method and r.path.startswith("/UserPlayedItems/")
                   and r.path.rsplit("/", 1)[-1] in ids)

    def writes(self) -> int:
        with self.fake.lock:
            return sum(1 for r in self.fake.requests if r.method in ("POST", "DELETE"))

    def come_back(self, *backends) -> None:
        """Listen again on the same port. While it was down a client's connect() to that
        ephemeral port can connect to itself (TCP simultaneous open) and hold the port:
        drop the backends' pooled connections and try again."""
        for attempt in range(20):
            try:
                self.fake.come_back()
                return
            except (SystemExit, OSError):  # werkzeug exits when the port is taken
                for b in backends:
                    http = getattr(b, "http", None)
                    if http is not None:
                        http.session.close()
                time.sleep(0.1)
        raise AssertionError(f"port {self.fake.port} stayed taken")

    def stop(self):
        self.fake.stop()


def wait_for(pred: Callable[[], bool], timeout: float = 5.0, interval: float = 0.005) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(interval)
    return pred()


def full_pass(worker, source_id: str, *, force: bool = False, timeout: float = 5.0) -> bool:
    """Wake a lane (or "sync now" it) and wait until it has finished a whole pass begun after that,
    so an assertion that nothing was sent sees what the worker did, not what it had no time to do."""
    start = worker.passes(source_id)
    worker.process_now() if force else worker.notify()
    return wait_for(lambda: worker.passes(source_id) >= start + 2, timeout)


def open_rows(queue, statuses=("pending", "syncing")) -> int:
    return sum(n for per in queue.counts().values() for s, n in per.items() if s in statuses)


class Recorder:
    """A subscriber that keeps every event."""

    def __init__(self):
        self.events: List = []
        self.lock = threading.Lock()

    def __call__(self, event):
        with self.lock:
            self.events.append(event)

    def kinds(self, source_id: Optional[str] = None) -> List[str]:
        with self.lock:
            return [e.kind for e in self.events if source_id is None or e.source_id == source_id]

    def of(self, kind: str) -> List:
        with self.lock:
            return [e for e in self.events if e.kind == kind]


__all__ = ["FakeClock", "Server", "wait_for", "full_pass", "open_rows", "Recorder", "PROGRESS", "WATCHED", "UNWATCHED", "T0"]
