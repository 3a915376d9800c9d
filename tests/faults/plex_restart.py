"""A player process for the Plex restart-window test (tests/test_live_sessions.py), killed with SIGKILL.

    python -m tests.faults.plex_restart URL TOKEN RATING_KEY DURATION_S QUEUE STATE

Plays one viewing with the real tracker, queue, worker and live reporter: a seek past Plex's
watched threshold (the queue's position there counts the view on Plex), then, once the parent
says so on stdin, playing on (the watched mark). The live reporter cannot identify the item in
time here, so only the queue reaches Plex. Prints ``counted`` once the position was applied and
``held`` once the watched mark is recorded in the queue (the worker was stopped first, so it is
not sent: the process dies between recording and sending it); then waits to be killed.
"""
from __future__ import annotations

import sys
import time

from playbacksync.backends import make_backend
from playbacksync.changes import Change
from playbacksync.config import ServerConfig
from playbacksync.live import LiveReporter
from playbacksync.queue import SyncQueue
from playbacksync.tracker import Tracker
from playbacksync.tracker.events import POSITION, SEEKED, STARTED, MediaRef, PlaybackEvent
from playbacksync.worker import SyncWorker

MEDIA = MediaRef(path="/m/film.mkv", title="Film", entry_key="1")


def wait(pred, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            sys.exit("timed out")
        time.sleep(0.02)


def main(url: str, token: str, key: str, duration_s: str, queue_path: str, state_path: str) -> None:
    duration = float(duration_s)
    cfg = ServerConfig(id="live", type="plex", url=url, token=token, device_id="dev-restart")
    queue = SyncQueue(queue_path)
    reporter = LiveReporter({"live": make_backend(cfg)}, lambda sid, media: None, state_path=state_path)
    worker = SyncWorker(queue, {"live": make_backend(cfg)}, poll_interval=0.2)
    worker.live_cover, worker.live_reported = reporter.cover, reporter.reported
    tracker = Tracker(progress_interval=10, watched_percent=90)
    worker.start()

    def play(kind: str, position: float, at: float) -> None:
        event = PlaybackEvent(kind, media=MEDIA, position=position, duration=duration, at=at)
        changes = tracker.handle(event)  # as the app does: the tracker first, then the live session
        reporter.handle(event)
        for c in changes:
            queue.enqueue_change(Change(media_item_id=key, source_id="live", user_id="", change_type=c.change_type,
                                        position_ms=c.position_ms, duration_ms=c.duration_ms,
                                        created_at=c.created_at))
            worker.notify()

    def waiting():
        return [r for r in queue.rows(statuses=("pending", "syncing"))]

    play(STARTED, 0.0, 0.0)
    play(SEEKED, 0.95 * duration, 1.0)  # a seek landing past the threshold: progress, not "watched"
    wait(lambda: not waiting())
    print("counted", flush=True)
    sys.stdin.readline()
    worker.stop()
    play(POSITION, 0.95 * duration + 2, 3.0)  # playing on from there: the watched mark
    wait(lambda: [r.change_type for r in waiting()] == ["mark_watched"])
    print("held", flush=True)
    time.sleep(600)  # killed here


if __name__ == "__main__":
    main(*sys.argv[1:])
