"""A watched mark reaches each server exactly once, for every server type (issue 11).

The fakes' ``late_write(seconds)`` holds a write longer than the client's read
timeout and then applies it: the client saw a timeout, the server still did it.
Real worker threads, real queue files, real HTTP; the quit-then-sync cases run
`playback-sync sync` as real processes (one quit at its deadline or killed with
SIGKILL mid-request, the next started right after).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from playbacksync.changes import SYNCED, WATCHED, Change
from playbacksync.queue import SyncQueue
from playbacksync.worker import SyncWorker
from tests.backend_matrix import CASES
from tests.fakes.base import fail_on_spec_violations  # noqa: F401
from tests.test_worker_support import wait_for

ROOT = Path(__file__).resolve().parents[1]
# One case per server type (the write paths differ by type, not by Jellyfin version here: each
# case costs a send window of seconds).
TYPES = [next(c for c in CASES if c.kind == kind) for kind in ("jellyfin", "emby", "plex")]


@pytest.fixture(scope="module", params=TYPES, ids=[c.id for c in TYPES])
def h(request):
    harness = request.param.harness().start()
    yield harness
    harness.stop()


READ_TIMEOUT = 0.5
LATE = 1.5  # the server applies the write this long after it came: past the client's read timeout


def _watched(h, item, source_id):
    return Change(media_item_id=item, source_id=source_id, user_id=getattr(h, "user_id", "") or "",
                  change_type=WATCHED, completed=True, created_at=time.time())


def _writes(h) -> int:
    with h.fake.lock:
        return sum(1 for r in h.fake.requests if r.method in ("POST", "PUT", "DELETE"))


def test_a_write_applied_after_the_client_gave_up_is_not_sent_again(h, tmp_path):
    """Issue 11: the retry's conflict check read the item before the first request had landed,
    and the mark was applied twice (play count 2)."""
    item = h.add_item("Late", path=f"/m/late-{tmp_path.name}.mkv")
    queue = SyncQueue(str(tmp_path))
    source = h.server_config().id
    worker = SyncWorker(queue, {source: h.backend(connect_timeout=1.0, read_timeout=READ_TIMEOUT)},
                        poll_interval=0.05, backoff_base=0.05, backoff_cap=0.2)
    try:
        worker.start()
        assert wait_for(lambda: worker.server_states()[source] == "online", 5)
        h.fake.late_write(LATE)
        late = h.fake.late_writes_applied
        rid = queue.enqueue_change(_watched(h, item, source))
        worker.notify()
        # Window: (1.0 + 0.5) + 5 s margin = 6.5 s; then one read, and the row is closed.
        assert wait_for(lambda: queue.get(rid).status == SYNCED, 20), queue.get(rid)
        assert wait_for(lambda: h.fake.late_writes_applied > late, 10)  # the held write has landed
    finally:
        worker.stop(2.0)
        queue.close()
        h.fake.reset_trouble()
    assert h.state(item).play_count == 1
    assert "not sent again" in (queue_row_note(tmp_path, rid) or "")


def queue_row_note(tmp_path, rid):
    q = SyncQueue(str(tmp_path))
    try:
        return q.get(rid).error_message
    finally:
        q.close()


def _config(h, tmp_path: Path) -> Path:
    cfg = h.server_config(read_timeout=2.0, connect_timeout=1.0)
    lines = ["[sync]", "progress_interval = 10", "", "[[servers]]", f'id = "{cfg.id}"', f'type = "{cfg.type}"',
             f'url = "{cfg.url}"', f'token = "{cfg.token}"', f"read_timeout = {cfg.read_timeout}",
             f"connect_timeout = {cfg.connect_timeout}"]
    if cfg.user_id:
        lines.append(f'user_id = "{cfg.user_id}"')
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.chmod(path, 0o600)
    return path


def _sync(tmp_path: Path, config: Path, timeout: float) -> subprocess.Popen:
    env = dict(os.environ, PLAYBACK_SYNC_DATA_DIR=str(tmp_path / "data"), PLAYBACK_SYNC_CONFIG=str(config),
               XDG_STATE_HOME=str(tmp_path / "state"), XDG_CACHE_HOME=str(tmp_path / "cache"),
               PYTHONPATH=os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT / "plugin"), str(ROOT)) if p))
    return subprocess.Popen([sys.executable, "-m", "playbacksync.cli", "sync", "--timeout", str(timeout)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("how", ["quit", "killed"])
def test_quit_or_killed_during_a_slow_write_then_sync_applies_it_once(h, tmp_path, how):
    """Issue 11: the player quit during a slow write and `sync` ran right after: applied twice."""
    item = h.add_item("Quit", path=f"/m/quit-{tmp_path.name}-{how}.mkv")
    config = _config(h, tmp_path)
    queue = SyncQueue(str(tmp_path / "data"))
    rid = queue.enqueue_change(_watched(h, item, h.server_config().id))
    queue.close()
    h.fake.late_write(6.0)  # longer than the first process lives (and than its 2 s read timeout)
    late = h.fake.late_writes_applied
    before = _writes(h)
    first = _sync(tmp_path, config, timeout=1.0)  # quits (its deadline) while the write is held
    try:
        assert wait_for(lambda: _writes(h) > before, 10)  # the write reached the server
        if how == "killed":
            first.send_signal(signal.SIGKILL)
        first.communicate(timeout=20)
        second = _sync(tmp_path, config, timeout=30.0)  # right after
        out, err = second.communicate(timeout=60)
    finally:
        for p in (first,):
            if p.poll() is None:
                p.kill()
        h.fake.reset_trouble()
    assert second.returncode == 0, (out, err)
    assert "all synced" in out
    assert wait_for(lambda: h.fake.late_writes_applied > late, 10)  # the held write has landed
    assert h.state(item).play_count == 1
    q = SyncQueue(str(tmp_path / "data"))
    try:
        assert q.get(rid).status == SYNCED
    finally:
        q.close()


def test_a_send_that_outlives_its_lease_keeps_its_claim(tmp_path):
    """Issue 11: extend_lease was never called, so a write held longer than the lease could be taken
    over by another process and sent twice. The lane's heartbeat renews the claim while it sends."""
    from tests.test_worker_support import Server

    server = Server("jf", items=1, read_timeout=5.0)
    mine = SyncQueue(str(tmp_path), lease_seconds=0.6)
    other = SyncQueue(str(tmp_path), lease_seconds=0.6)  # another process on the same file
    worker = SyncWorker(mine, {"jf": server.backend()}, poll_interval=0.05)
    try:
        worker.start()
        assert wait_for(lambda: worker.server_states()["jf"] == "online", 5)
        server.fake.late_write(2.0)  # answered after 2 s (within the read timeout): > 3 leases
        rid = mine.enqueue_change(server.change(0, WATCHED, created_at=time.time()))
        worker.notify()
        assert wait_for(lambda: server.writes() > 0, 5)  # the write is out (held by the server)
        taken = []
        while mine.get(rid).status != SYNCED and not taken:
            other.recover_stale()
            taken = other.claim("jf")
            time.sleep(0.05)
        assert taken == [], "another process took over a row whose send was still running"
        assert mine.get(rid).resolution == "applied"
    finally:
        worker.stop(2.0)
        mine.close()
        other.close()
        server.stop()
    assert server.state(0).play_count == 1
