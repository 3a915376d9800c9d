"""Claims of a killed process are recovered because its owner lock is free, not because of host:pid.

Real processes in real PID namespaces (``unshare --pid --fork``, root only): a
claimer in one namespace is SIGKILLed and ``playback-sync sync`` in another
namespace, where the claimer's PID is its own, recovers and sends the change;
a live claimer in another namespace, whose PID does not exist where the check
runs, keeps its claim; and a killed claimer's PID taken by another live
process (real PID reuse, forced through ``ns_last_pid``) does not hide it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from playbacksync.changes import PENDING, SYNCED, SYNCING
from playbacksync.queue import SyncQueue
from playbacksync.queue import owners
from tests.fakes.base import fail_on_spec_violations  # noqa: F401  (autouse)
from tests.faults.servers import jellyfin_with_clip
from tests.faults.cli import PLUGIN, can_unshare, command, environment, in_new_pid_namespace, playback_sync

TOKEN = "owner-token-5d1c0a9e77"

needs_namespaces = pytest.mark.skipif(not can_unshare(), reason="needs root and unshare(1) for PID namespaces")

CLAIMER = textwrap.dedent("""
    import sys, time
    from playbacksync.changes import Change
    from playbacksync.queue import SyncQueue
    data, item, user = sys.argv[1:4]
    q = SyncQueue(data)
    q.enqueue_change(Change(item, "home", user, "mark_watched", created_at=time.time()))
    rows = q.claim("home")
    print("claimed", rows[0].id, q.owner, flush=True)
    time.sleep(600)                               # "sending" until killed
""")

PEEK = textwrap.dedent("""
    import sys
    from playbacksync.queue import SyncQueue
    q = SyncQueue(sys.argv[1])
    row = q.get(int(sys.argv[2]))
    print(row.status, flush=True)
    q.close()
""")


@pytest.fixture
def jellyfin():
    with jellyfin_with_clip(TOKEN) as fake:
        yield fake


def write_config(path, fake):
    path.write_text(f'[[servers]]\nid = "home"\ntype = "jellyfin"\nurl = "{fake.url}"\n'
                    f'token = "{TOKEN}"\nuser_id = "{fake.uid}"\n')
    return path


def start_claimer(tmp_path, fake, prefix):
    proc = subprocess.Popen([*prefix, sys.executable, "-c", CLAIMER, str(tmp_path / "data"), fake.iid, fake.uid],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=environment(tmp_path, PYTHONPATH=PLUGIN))
    line = proc.stdout.readline().split()
    assert line[:1] == ["claimed"], proc.stderr.read()
    return proc, int(line[1]), line[2]


def host_pids_under(pid: int) -> list:
    """Every descendant of ``pid`` as this namespace numbers them."""
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/children") as fh:
            for child in map(int, fh.read().split()):
                out += [child] + host_pids_under(child)
    return out


def kill_claimer(proc) -> None:
    """SIGKILL the claimer itself (not only its unshare parent) and wait until it is gone."""
    for pid in host_pids_under(proc.pid):
        os.kill(pid, signal.SIGKILL)
    proc.kill()
    proc.wait(30)


def status_of(tmp_path, row_id: int, prefix=()) -> str:
    done = subprocess.run([*prefix, sys.executable, "-c", PEEK, str(tmp_path / "data"), str(row_id)],
                          capture_output=True, text=True, timeout=60, env=environment(tmp_path))
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@needs_namespaces
@pytest.mark.timeout(120)
def test_claim_of_a_process_killed_in_another_pid_namespace_is_recovered_and_sent(tmp_path, jellyfin):
    cfg = write_config(tmp_path / "c.toml", jellyfin)
    proc, row_id, owner = start_claimer(tmp_path, jellyfin, in_new_pid_namespace())
    try:
        assert owner.split(":")[1] == "1"      # PID 1 of its namespace: the same PID `sync` gets in its own
    finally:
        kill_claimer(proc)
    assert not jellyfin.user_data(jellyfin.uid, jellyfin.iid).played
    done = playback_sync("--config", cfg, "--data-dir", tmp_path / "data", "sync", "--timeout", "8",
                         home=tmp_path, prefix=in_new_pid_namespace())
    assert done.returncode == 0, done.stderr
    assert "home: all synced" in done.stdout
    data = jellyfin.user_data(jellyfin.uid, jellyfin.iid)
    assert data.played and data.play_count == 1
    assert status_of(tmp_path, row_id) == SYNCED
    assert not os.listdir(tmp_path / "data" / owners.FOLDER)  # the dead owner's lock file is swept


@needs_namespaces
@pytest.mark.timeout(120)
def test_live_claimer_in_another_pid_namespace_keeps_its_claim(tmp_path, jellyfin):
    # The claimer is PID 2 of its namespace; where the check runs (another namespace) no PID 2 exists.
    prefix = [*in_new_pid_namespace(), "sh", "-c", '"$@" & wait', "sh"]
    proc, row_id, owner = start_claimer(tmp_path, jellyfin, prefix)
    try:
        assert owner.split(":")[1] == "2"
        assert status_of(tmp_path, row_id, in_new_pid_namespace()) == SYNCING  # alive: not taken back
        assert status_of(tmp_path, row_id) == SYNCING
        cfg = write_config(tmp_path / "c.toml", jellyfin)
        done = playback_sync("--config", cfg, "--data-dir", tmp_path / "data", "sync", "--timeout", "2",
                             home=tmp_path, prefix=in_new_pid_namespace())
        assert "home: 1 syncing" in done.stdout and done.returncode == 1, (done.stdout, done.stderr)  # not "all synced"
        assert not jellyfin.user_data(jellyfin.uid, jellyfin.iid).played     # nor sent a second time
    finally:
        kill_claimer(proc)
    assert status_of(tmp_path, row_id, in_new_pid_namespace()) == PENDING  # dead: taken back


@needs_namespaces
@pytest.mark.timeout(120)
def test_pid_of_a_killed_claimer_reused_by_a_live_process_does_not_hide_its_claim(tmp_path, jellyfin):
    cfg = write_config(tmp_path / "c.toml", jellyfin)
    if len(command()) > 1:
        pytest.skip("needs the installed playback-sync script")
    out_file = tmp_path / "claimer.out"
    script = textwrap.dedent("""
        out="$1"; shift
        "$@" > "$out" &
        claimer=$!
        while ! grep -q claimed "$out"; do
            kill -0 $claimer || exit 9
            sleep 0.05
        done
        kill -9 $claimer; wait $claimer
        echo $((claimer - 1)) > /proc/sys/kernel/ns_last_pid   # the next process gets the dead claimer's PID
        sleep 300 &
        sleeper=$!
        echo "reused $sleeper $claimer"
        "$SYNC_CMD" --config "$CFG" --data-dir "$DATA" sync --timeout 8
        echo "sync exit $?"
        kill $sleeper
    """)
    env = environment(tmp_path, PYTHONPATH=PLUGIN, SYNC_CMD=command()[0], CFG=cfg, DATA=tmp_path / "data")
    done = subprocess.run([*in_new_pid_namespace(), "sh", "-c", script, "sh", str(out_file), sys.executable, "-c",
                           CLAIMER, str(tmp_path / "data"), jellyfin.iid, jellyfin.uid],
                          capture_output=True, text=True, timeout=100, env=env)
    lines = done.stdout.splitlines()
    reused = [line.split() for line in lines if line.startswith("reused ")]
    assert reused and reused[0][1] == reused[0][2], (done.stdout, done.stderr)  # the PID really was reused
    claimed = out_file.read_text().split()
    assert claimed[0] == "claimed" and claimed[2].split(":")[1] == reused[0][1]
    assert "home: all synced" in done.stdout and "sync exit 0" in done.stdout, (done.stdout, done.stderr)
    data = jellyfin.user_data(jellyfin.uid, jellyfin.iid)
    assert data.played and data.play_count == 1
    assert status_of(tmp_path, int(claimed[1])) == SYNCED


def test_owner_lock_tells_a_live_queue_from_a_closed_or_killed_one(tmp_path):
    q = SyncQueue(str(tmp_path))
    token = q.owner.rpartition(":")[2]
    assert owners.owner_gone(str(tmp_path), token) is False    # held from the open on
    from playbacksync.changes import Change

    q.enqueue_change(Change("item", "srv", "u", "mark_watched"))
    [row] = q.claim("srv")
    assert owners.owner_gone(str(tmp_path), token) is False    # held, also against this same process
    other = SyncQueue(str(tmp_path))                           # a second queue in this process: not stolen
    assert other.get(row.id).status == SYNCING
    other.close()
    q.close()                                                  # still holding a claim: the lock stays
    assert owners.owner_gone(str(tmp_path), token) is False
    idle = SyncQueue(str(tmp_path))
    idle_token = idle.owner.rpartition(":")[2]
    idle.close()                                               # no claim: the lock file goes
    assert owners.owner_gone(str(tmp_path), idle_token) is None
