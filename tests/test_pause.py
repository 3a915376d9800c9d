"""Persistent pause (queue/pause.py): a file in the data folder that every process's worker reads.

The pause and resume here are written by a separate Python process, so the
tests prove the worker sees another process's change, as `playback-sync pause`
while mpv plays.
"""
from __future__ import annotations

import os
import stat
import subprocess
import sys

from playbacksync.changes import PENDING, SYNCED
from playbacksync.queue import pause
from tests.fakes.base import fail_on_spec_violations  # noqa: F401
from tests.test_worker_integration import env  # noqa: F401
from tests.test_worker_support import WATCHED


def _set_in_other_process(data_dir, server_id, paused, all_servers=()):
    code = ("import sys; from playbacksync.queue import pause; "
            "pause.set_paused(sys.argv[1], sys.argv[2] or None, sys.argv[3] == '1', sys.argv[4:])")
    subprocess.run([sys.executable, "-c", code, str(data_dir), server_id or "", "1" if paused else "0",
                    *all_servers], check=True, timeout=60)


def test_set_and_read_one_all_and_resume_one_of_all(tmp_path):
    d = str(tmp_path)
    assert pause.paused_servers(d) == frozenset()
    pause.set_paused(d, "jf", True)
    assert pause.paused_servers(d) == {"jf"}
    assert pause.is_paused(d, "jf") and not pause.is_paused(d, "plex")
    pause.set_paused(d, None, True)
    assert pause.is_paused(d, "plex")
    # resuming one server while all are paused keeps the others paused
    pause.set_paused(d, "plex", False, all_servers=["jf", "plex", "emby"])
    assert pause.paused_servers(d) == {"jf", "emby"}
    pause.set_paused(d, None, False)
    assert pause.paused_servers(d) == frozenset()


def test_file_is_private_and_written_whole(tmp_path):
    pause.set_paused(str(tmp_path), "jf", True)
    path = tmp_path / pause.FILENAME
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [pause.FILENAME]  # no temporary file left


def test_damaged_file_means_not_paused_and_is_replaced_by_the_next_write(tmp_path):
    (tmp_path / pause.FILENAME).write_text("{not json")
    assert pause.paused_servers(str(tmp_path)) == frozenset()
    pause.set_paused(str(tmp_path), "jf", True)
    assert pause.paused_servers(str(tmp_path)) == {"jf"}


def test_another_processes_pause_holds_changes_back_until_its_resume(env):  # noqa: F811
    s = env.server("jf")
    w = env.worker(s, start=False)
    lane = w._lanes["jf"]
    _set_in_other_process(env.tmp, "jf", True)
    rid = env.enqueue(s, 1, WATCHED)
    assert w.server_states()["jf"] == "paused"
    assert lane.step() is False
    assert env.row(rid).status == PENDING and s.writes() == 0
    # a second change while paused is queued and coalesced as usual
    _set_in_other_process(env.tmp, None, False)
    assert w.server_states()["jf"] != "paused"
    lane.step()
    assert env.row(rid).status == SYNCED and s.played_requests(1) == 1


def test_pause_all_holds_every_server(env):  # noqa: F811
    a, b = env.server("jf"), env.server("other")
    w = env.worker(a, b, start=False)
    _set_in_other_process(env.tmp, None, True)
    assert set(w.server_states().values()) == {"paused"}
    ra, rb = env.enqueue(a, 1, WATCHED), env.enqueue(b, 1, WATCHED)
    assert w._lanes["jf"].step() is False and w._lanes["other"].step() is False
    assert env.row(ra).status == PENDING and env.row(rb).status == PENDING
    _set_in_other_process(env.tmp, "other", False, ["jf", "other"])
    w._lanes["other"].step()
    w._lanes["jf"].step()
    assert env.row(rb).status == SYNCED and env.row(ra).status == PENDING


def test_the_service_shows_and_sets_the_users_pause_for_hosts(tmp_path):
    from playbacksync.app import SyncService
    from playbacksync.config import Config

    service = SyncService(Config(), str(tmp_path))
    _set_in_other_process(tmp_path, "jf", True)
    assert service.paused() == {"jf"}
    service.set_paused(None, True)
    assert pause.paused_servers(str(tmp_path)) == {pause.ALL}
    service.set_paused(None, False)
    assert service.paused() == frozenset()
