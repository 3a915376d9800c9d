"""When each server's index is refreshed: one background thread per server at a time.

A refresh starts when the index is stale (older than ``max_age``), when a miss
could be fixed by one (at most once per ``min_refresh_interval`` per server),
or when asked (``refresh``). Each runs ``refresh.refresh_server`` on its own
thread, reports progress, and records a failure in the index; ``close`` stops
them between items (the old rows stay).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Dict, Iterable, List, Mapping, Optional

from .index import ItemIndex, _describe
from .refresh import RefreshProgress, Stopped, refresh_server

log = logging.getLogger(__name__)


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return "%d s" % seconds
    if seconds < 5400:
        return "%d min" % round(seconds / 60)
    if seconds < 2 * 86400:
        return "%d h" % round(seconds / 3600)
    return "%d days" % round(seconds / 86400)


class RefreshScheduler:
    def __init__(self, index: ItemIndex, backends: Mapping[str, object], *, max_age: float,
                 min_refresh_interval: float, page_size: Optional[int], clock: Callable[[], float],
                 on_progress: Optional[Callable[[RefreshProgress], None]] = None,
                 on_identity: Optional[Callable[[str], None]] = None):
        self.index = index
        self.backends = backends
        self.max_age = max_age
        self.min_refresh_interval = min_refresh_interval
        self.page_size = page_size
        self.on_progress = on_progress
        self._on_identity = on_identity  # a refresh confirmed who the server is
        self._clock = clock
        self._lock = threading.Lock()
        self._threads: Dict[str, threading.Thread] = {}
        self._last_start: Dict[str, float] = {}
        self._progress: Dict[str, RefreshProgress] = {}
        self.stopping = threading.Event()
        self.on_refreshed: List[Callable[[str], None]] = []  # called with the server id after a refresh succeeded

    def running(self, server_id: str) -> Optional[RefreshProgress]:
        """The progress of a running refresh (done 0 before its first page), else None."""
        with self._lock:
            thread = self._threads.get(server_id)
            if thread is None or not thread.is_alive():
                return None
            return self._progress.get(server_id) or RefreshProgress(server_id, "", 0, None, time.time())

    def progress(self) -> Dict[str, RefreshProgress]:
        with self._lock:
            return {sid: p for sid, p in self._progress.items()
                    if sid in self._threads and self._threads[sid].is_alive()}

    def refresh(self, server_ids: Iterable[str], *, wait: bool, timeout: Optional[float],
                full: bool) -> Dict[str, Optional[str]]:
        deadline = None if timeout is None else time.monotonic() + timeout

        def left() -> Optional[float]:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        threads = {}
        for sid in server_ids:
            with self._lock:
                running = self._threads.get(sid)
            thread = self.start(sid, force=True, full=full)
            threads[sid] = (thread, thread is not None and thread is running)
        out: Dict[str, Optional[str]] = {}
        for sid, (thread, joined) in threads.items():
            if thread is None:
                out[sid] = "no connection to this server is configured"
                continue
            if wait:
                thread.join(left())
                if joined and not thread.is_alive():
                    # That refresh was under way before this call and may have listed the library
                    # before a change the caller knows of: one more, started now, answers for it.
                    thread = self.start(sid, force=True, full=full) or thread
                    thread.join(left())
            out[sid] = "still running" if thread.is_alive() else self.index.info(sid).last_error
        return out

    def close(self, timeout: float) -> bool:
        self.stopping.set()
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads.values())
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in threads)

    def _last_refresh_start(self, server_id: str) -> Optional[float]:
        info = self.index.info(server_id)
        times = [t for t in (self._last_start.get(server_id), info.refreshed_at, info.last_error_at) if t]
        return max(times) if times else None

    def start(self, server_id: str, *, force: bool = False, full: bool = False) -> Optional[threading.Thread]:
        """The running refresh of a server, a new one, or None (no backend, or too soon)."""
        if self.stopping.is_set():
            return None
        with self._lock:
            thread = self._threads.get(server_id)
            if thread is not None and thread.is_alive():
                return thread
            backend = self.backends.get(server_id)
            if backend is None:
                return None
            last = self._last_refresh_start(server_id)
            now = self._clock()
            if not force and last is not None and now - last < self.min_refresh_interval:
                return None
            self._last_start[server_id] = now
            self._progress.pop(server_id, None)
            thread = threading.Thread(target=self._run, args=(server_id, backend, full),
                                      name="index-refresh-%s" % server_id, daemon=True)
            self._threads[server_id] = thread
            thread.start()
            return thread

    def safe_start(self, server_id: str) -> Optional[threading.Thread]:
        try:
            return self.start(server_id)
        except Exception:  # the index file went bad under us: answer without refreshing
            log.exception("cannot start an index refresh of %s", server_id)
            return None

    def refresh_if_stale(self, server_id: str) -> None:
        try:
            info = self.index.info(server_id)
        except Exception:
            log.exception("cannot read the index of %s", server_id)
            return
        if info.refreshed_at is None or self._clock() - info.refreshed_at > self.max_age:
            self.safe_start(server_id)

    def _report(self, progress: RefreshProgress) -> None:
        with self._lock:
            self._progress[progress.server_id] = progress
        if self.on_progress is not None:
            try:
                self.on_progress(progress)
            except Exception:
                log.exception("progress callback failed")

    def _run(self, server_id: str, backend, full: bool) -> None:
        try:
            refresh_server(self.index, server_id, _Paged(backend, self.page_size), stopping=self.stopping,
                           progress=self._report, clock=self._clock, force_full=full)
            if getattr(backend, "identity", None) is not None and self._on_identity is not None:
                self._on_identity(server_id)
        except Stopped:
            log.info("index refresh of %s stopped; old rows kept", server_id)
            return
        except Exception as e:
            log.warning("index refresh of %s failed: %s", server_id, _describe(e))
            try:
                self.index.record_error(server_id, _describe(e))
            except Exception:
                log.exception("cannot record the failed refresh of %s", server_id)
            return
        for callback in list(self.on_refreshed):
            try:
                callback(server_id)
            except Exception:
                log.exception("a callback after the index refresh of %s failed", server_id)

    def state_text(self, server_id: str) -> str:
        """How old the index of a server is, and whether a refresh runs or failed, for reasons."""
        info = self.index.info(server_id)
        now = self._clock()
        running = self.running(server_id)
        parts = []
        if info.refreshed_at is None:
            parts.append("index never refreshed")
        else:
            parts.append("refreshed %s ago" % _age(now - info.refreshed_at))
        if info.last_error:
            error = info.last_error if len(info.last_error) <= 240 else info.last_error[:239] + "…"
            parts.append("last refresh failed %s ago: %s" % (_age(now - (info.last_error_at or now)), error))
        if running is not None:
            parts.append("a refresh is running" + (" (%d items so far)" % running.done if running.done else ""))
        if server_id not in self.backends:
            parts.append("no connection to this server is configured")
        return "(" + "; ".join(parts) + ")"


class _Paged:
    """A backend whose listings use the configured page size (when one is set)."""

    def __init__(self, backend, page_size: Optional[int]):
        self._backend = backend
        self._page_size = page_size

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def iter_items(self, **kw):
        if self._page_size:
            kw["page_size"] = self._page_size
        return self._backend.iter_items(**kw)
