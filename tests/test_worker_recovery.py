"""A running worker takes back the claims of a process that died, without a restart.

The Kodi service and the mpv agent run for days; a player or `sync` that claimed
rows and was killed meanwhile must not leave them in ``syncing`` until the
service's next start. Real processes: a claimer (another process, in this PID
namespace or in a new one) claims rows and is SIGKILLed while a worker in this
process runs; the rows reach the server exactly once, promptly. While the
claimer lives, its claims are left alone (its owner lock is held), even though
its PID means nothing here (another namespace) and its PID 1 is alive here.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from playbacksync.changes import SYNCED, SYNCING
from playbacksync.queue import SyncQueue
from playbacksync.worker import SyncWorker
from tests.fakes.base import fail_on_spec_violations  # noqa: F401  (autouse)
from tests.faults.cli import PLUGIN, can_unshare, environment, in_new_pid_namespace
from tests.test_queue_owners import kill_claimer
from tests.test_worker_support import Server, full_pass, wait_for

CLAIMER = textwrap.dedent("""
    import sys, time
    from playbacksync.changes import Change
    from playbacksync.queue import SyncQueue
    data, user, *items = sys.argv[1:]
    q = SyncQueue(data)
    for item in items:
        q.enqueue_change(Change(item, "jf", user, "mark_watched", created_at=time.time()))
    rows = q.claim("jf")
    print("claimed", " ".join(str(r.id) for r in rows), "owner", q.owner, flush=True)
    time.sleep(600)                               # "sending" until killed
""")


@pytest.fixture
def rig(tmp_path):
    server = Server("jf", items=2)
    queue = SyncQueue(str(tmp_path / "data"))
    worker = SyncWorker(queue, {"jf": server.backend()}, poll_interval=0.1, recover_interval=0.0)
    worker.start()
    yield server, queue, worker
    worker.stop(2.0)
    queue.close()
    server.stop()


def claim_elsewhere(tmp_path, server, prefix=()):
    proc = subprocess.Popen([*prefix, sys.executable, "-c", CLAIMER, str(tmp_path / "data"), server.user_id,
                             *server.items], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=environment(tmp_path, PYTHONPATH=PLUGIN))
    words = proc.stdout.readline().split()
    assert words[:1] == ["claimed"], proc.stderr.read()
    ids = [int(w) for w in words[1:words.index("owner")]]
    return proc, ids, words[-1]


def recovered_once(server, queue, worker, tmp_path, prefix):
    worker.pause("jf")  # the claimer takes the rows, not our worker (our lane keeps passing meanwhile)
    proc, ids, owner = claim_elsewhere(tmp_path, server, prefix)
    try:
        assert len(ids) == 2
        worker.resume("jf")
        for _ in range(3):  # passes that each ran recovery: a live owner's claims are left alone
            assert full_pass(worker, "jf", force=True)
        assert [queue.get(i).status for i in ids] == [SYNCING, SYNCING]
        assert server.writes() == 0
    finally:
        kill_claimer(proc)
    # Dead now: its lock is free, the running worker takes the rows back and sends each once.
    assert wait_for(lambda: all(queue.get(i).status == SYNCED for i in ids), 15.0), \
        [queue.get(i).status for i in ids]
    for n in range(2):
        assert server.state(n).played and server.state(n).play_count == 1
        assert server.played_requests(n) == 1
    assert all(queue.get(i).resolution == "applied" for i in ids)
    return owner


@pytest.mark.timeout(120)
def test_claims_of_a_killed_process_are_sent_once_by_the_running_worker(tmp_path, rig):
    server, queue, worker = rig
    recovered_once(server, queue, worker, tmp_path, ())


@pytest.mark.skipif(not can_unshare(), reason="needs root and unshare(1) for PID namespaces")
@pytest.mark.timeout(120)
def test_claims_of_a_process_killed_in_another_pid_namespace_are_sent_once_by_the_running_worker(tmp_path, rig):
    server, queue, worker = rig
    owner = recovered_once(server, queue, worker, tmp_path, in_new_pid_namespace())
    assert owner.split(":")[1] == "1"  # its PID there; PID 1 is alive here too: only the lock can tell
