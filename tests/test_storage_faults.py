"""Storage faults through the whole stack: a real full disk and a disk gone read-only
(tiny tmpfs), the queue locked by another process past the busy timeout, a damaged
file. Each gives a clear message (QueueError text, CLI exit 3 on stderr, a service
message for the OSD) and nothing already acknowledged is lost.

The queue's own unit tests (tests/test_queue_damage.py) cover the same faults on one
SyncQueue; here they hit the CLI, the sync service and other processes.
"""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from playbacksync.app import SyncService
from playbacksync.changes import PROGRESS, Change
from playbacksync.config import Config, ServerConfig
from playbacksync.queue import QueueError, SyncQueue
from playbacksync.tracker.events import ENDED, POSITION, STARTED, MediaRef, PlaybackEvent
from tests.faults.storage import fill, remount, tmpfs
from tests.fakes.base import fail_on_spec_violations  # noqa: F401  (autouse)
from tests.fakes.jellyfin import JellyfinFake

ROOT = Path(__file__).resolve().parents[1]


def change(i, position_ms=1000):
    return Change(media_item_id=f"item-{i}", source_id="srv", user_id="u", change_type=PROGRESS,
                  position_ms=position_ms, duration_ms=3_600_000, created_at=time.time())


def rows(path):
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {r[0]: (r[1], r[2]) for r in con.execute(
            "SELECT id, media_item_id, position_ms FROM playback_sync_queue")}
    finally:
        con.close()


@pytest.fixture
def env(tmp_path, monkeypatch):
    for var in ("XDG_STATE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    monkeypatch.delenv("PLAYBACK_SYNC_CONFIG", raising=False)
    monkeypatch.delenv("PLAYBACK_SYNC_DATA_DIR", raising=False)
    return tmp_path


def cli(*args, env_over=None, timeout=60):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.update(env_over or {})
    return subprocess.run([sys.executable, "-m", "playbacksync.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


class Messages:
    def __init__(self):
        self.items, self.lock = [], threading.Lock()

    def __call__(self, m):
        with self.lock:
            self.items.append(m)

    def texts(self):
        with self.lock:
            return [f"{m.kind}: {m.message}" for m in self.items]


def play_events(service, path="/media/a b.mkv", seconds=(40, 50, 60)):
    media = MediaRef(path=path, title="a b")
    t = 1000.0
    service.handle(PlaybackEvent(STARTED, media=media, position=0.0, duration=3600.0, at=t))
    for s in seconds:
        service.handle(PlaybackEvent(POSITION, media=media, position=float(s), duration=3600.0, at=t + s))
    service.handle(PlaybackEvent(ENDED, media=media, position=float(seconds[-1]) + 1, duration=3600.0,
                                 reason="quit", at=t + seconds[-1] + 1))


# -- a full disk ---------------------------------------------------------------------

def test_disk_full_is_a_clear_error_and_keeps_every_acknowledged_change(tmp_path):
    with tmpfs(tmp_path / "small", 2048) as disk:
        q = SyncQueue(str(disk), busy_timeout=0.5)
        acked = {q.enqueue_change(change(i, 1000 + i)): (f"item-{i}", 1000 + i) for i in range(20)}
        filler = fill(disk)
        error = None
        for i in range(20, 5000):  # until the disk refuses (WAL pages already allocated may take a few)
            try:
                acked[q.enqueue_change(change(i, 1000 + i))] = (f"item-{i}", 1000 + i)
            except QueueError as exc:
                error = str(exc)
                break
        assert error is not None, "the full disk never refused a write"
        assert "full" in error and q.path in error, error
        # The refused change was not half-written; everything acknowledged is there.
        assert rows(q.path) == acked
        # Another process sees the same rows even while the disk is full.
        done = subprocess.run([sys.executable, "-c", (
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]);"
            "print(c.execute('SELECT COUNT(*) FROM playback_sync_queue').fetchone()[0])"), q.path],
            capture_output=True, text=True, timeout=30)
        assert done.stdout.strip() == str(len(acked)), done.stderr
        filler.unlink()
        again = q.enqueue_change(change(9999, 7))  # space is back: the same queue works
        q.close()
        q2 = SyncQueue(str(disk))
        try:
            assert {r.id for r in q2.get_pending()} == set(acked) | {again}
        finally:
            q2.close()


def test_disk_full_while_playing_tells_the_viewer_and_keeps_the_queue(tmp_path):
    with JellyfinFake() as fake, tmpfs(tmp_path / "small", 4096) as disk:
        uid = fake.add_user("alice", "pw")
        token = fake.issue_token(uid, "diskFULLtoken123456")
        item = fake.add_item("A B", path="/media/a b.mkv", runtime_s=3600)
        config = Config(servers=(ServerConfig(id="jf", type="jellyfin", url=fake.url, token=token, user_id=uid),))
        q = SyncQueue(str(disk))
        kept = q.enqueue_change(Change(item, "jf", uid, PROGRESS, position_ms=5000, created_at=1.0))
        q.close()
        service = SyncService(config, str(disk), worker_options={"poll_interval": 0.1})
        messages = Messages()
        service.subscribe(messages)
        service.start()
        service.wait_ready(10)
        deadline = time.monotonic() + 10
        while fake.user_data(uid, item).position_ticks == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        service.worker.pause()  # keep what follows in the queue
        filler = fill(disk)
        try:
            play_events(service)
            deadline = time.monotonic() + 10
            while not any("could not be saved" in t for t in messages.texts()) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert service.stop(5.0) or True
        finally:
            filler.unlink()
        texts = messages.texts()
        assert any("could not be saved" in t and "full" in t for t in texts), texts
        assert all("diskFULLtoken123456" not in t for t in texts)
        # The change acknowledged before the disk filled reached the server; the rows are intact.
        assert fake.user_data(uid, item).position_ticks == 5000 * 10_000
        assert kept in rows(os.path.join(disk, "queue.sqlite"))


# -- a disk that went read-only ------------------------------------------------------------

def test_read_only_disk_clear_errors_from_queue_and_cli(env, tmp_path):
    with tmpfs(tmp_path / "ro", 1024) as disk:
        q = SyncQueue(str(disk))
        acked = {q.enqueue_change(change(i, 100 * i)): (f"item-{i}", 100 * i) for i in range(5)}
        q.close()  # (a file open for writing keeps the mount from going read-only)
        remount(disk, "ro")
        try:
            with pytest.raises(QueueError) as err:
                SyncQueue(str(disk))
            assert q.path in str(err.value) and ("read-only" in str(err.value) or "writable" in str(err.value))
            done = cli("status", "--no-check", env_over={"PLAYBACK_SYNC_DATA_DIR": str(disk)})
            assert done.returncode == 3, (done.stdout, done.stderr)
            assert str(disk) in done.stderr and "Traceback" not in done.stderr, done.stderr
            assert ("read-only" in done.stderr or "writable" in done.stderr), done.stderr
        finally:
            remount(disk, "rw")
        assert rows(os.path.join(disk, "queue.sqlite")) == acked
        assert not list(Path(disk).glob("*.corrupt-*"))  # not mistaken for damage


# -- locked by another process -------------------------------------------------------------

LOCKER = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
con.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.execute("ROLLBACK")
"""


def _lock(path, seconds):
    p = subprocess.Popen([sys.executable, "-c", LOCKER, path, str(seconds)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def test_lock_held_past_the_busy_timeout_gives_exit_3_and_loses_nothing(env, tmp_path):
    data = tmp_path / "data"
    q = SyncQueue(str(data))
    acked = {q.enqueue_change(change(i, 10 * i)): (f"item-{i}", 10 * i) for i in range(3)}
    q.close()
    locker = _lock(str(data / "queue.sqlite"), 30)
    try:
        started = time.monotonic()
        done = cli("status", "--no-check", env_over={"PLAYBACK_SYNC_DATA_DIR": str(data)})
        took = time.monotonic() - started
        assert done.returncode == 3, (done.stdout, done.stderr)
        assert "locked by another program" in done.stderr and str(data) in done.stderr, done.stderr
        assert "nothing already queued was lost" in done.stderr and "Traceback" not in done.stderr
        assert took >= 4.5, "gave up before the busy timeout"
        q = SyncQueue(str(data), busy_timeout=0.3)  # opening needs the lock too
    except QueueError as exc:
        assert "locked" in str(exc)
    finally:
        locker.kill()
        locker.wait()
    assert rows(str(data / "queue.sqlite")) == acked


def test_a_lock_shorter_than_the_busy_timeout_only_delays_the_write(tmp_path):
    q = SyncQueue(str(tmp_path), busy_timeout=5.0)
    first = q.enqueue_change(change(0, 1))
    locker = _lock(q.path, 1.0)
    try:
        started = time.monotonic()
        second = q.enqueue_change(change(1, 2))  # waits for the other process, then succeeds
        assert time.monotonic() - started >= 0.5
    finally:
        locker.wait(10)
    assert rows(q.path) == {first: ("item-0", 1), second: ("item-1", 2)}
    q.close()


# -- a damaged file -------------------------------------------------------------------------

def _damage(path: Path) -> bytes:
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 3 * page
    data[2 * page: 3 * page] = os.urandom(page)  # scribble over a page in the middle
    path.write_bytes(bytes(data))
    return bytes(data)


def test_damaged_file_is_moved_aside_with_a_message_and_kept(env, tmp_path):
    data = tmp_path / "data"
    q = SyncQueue(str(data))
    for i in range(400):
        q.enqueue_change(change(i, i))
    q.close()
    con = sqlite3.connect(str(data / "queue.sqlite"))
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    damaged = _damage(data / "queue.sqlite")
    done = cli("status", "--no-check", env_over={"PLAYBACK_SYNC_DATA_DIR": str(data)})
    assert done.returncode == 0, done.stderr
    kept = list(data.glob("queue.sqlite.corrupt-*"))
    kept = [k for k in kept if not str(k).endswith(("-wal", "-shm", "-journal"))]
    assert len(kept) == 1 and kept[0].read_bytes() == damaged  # kept as it was, for recovery
    assert "damaged" in done.stderr and str(kept[0]) in done.stderr, done.stderr  # the user is told
    logs = "".join(p.read_text() for p in (tmp_path / "xdg_state_home").rglob("*.log"))
    assert "damaged" in logs and str(kept[0]) in logs
    q = SyncQueue(str(data))  # the fresh queue works
    try:
        assert q.enqueue_change(change(1)) and q.moved_aside is None
    finally:
        q.close()


def test_damaged_file_at_play_start_is_shown_to_the_viewer(env, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "queue.sqlite").write_bytes(b"this is not a database, it is a note " * 500)
    service = SyncService(Config(), str(data))
    messages = Messages()
    service.subscribe(messages)
    service.start()
    service.wait_ready(10)
    service.stop(3.0)
    assert list(data.glob("queue.sqlite.corrupt-*"))
    assert any("damaged" in t for t in messages.texts()), messages.texts()
