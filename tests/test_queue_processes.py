"""Two real processes on one queue file, and a writer killed with SIGKILL."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from playbacksync.changes import PENDING, SYNCING
from playbacksync.queue import SyncQueue

from .test_queue_support import all_rows, change, raw

CLAIMER = textwrap.dedent("""
    import sys, time
    from playbacksync.queue import SyncQueue
    q = SyncQueue(sys.argv[1])
    print("ready", flush=True)
    sys.stdin.readline()                     # start together
    idle = 0
    while idle < 3:
        rows = q.claim("srv", limit=int(sys.argv[2]))
        if not rows:
            idle += 1
            continue
        idle = 0
        for r in rows:
            print("claimed", r.id, flush=True)
            time.sleep(0.001)                    # "sending" it, so both processes get a share
            q.mark_synced(r.id)
    q.close()
""")

ENQUEUER = textwrap.dedent("""
    import sys
    from playbacksync.changes import Change
    from playbacksync.queue import SyncQueue
    q = SyncQueue(sys.argv[1])
    print("ready", flush=True)
    sys.stdin.readline()
    tag = sys.argv[2]
    for i in range(int(sys.argv[3])):
        # one shared item (coalesced by both) and one own item per change
        q.enqueue_change(Change("shared", "srv", "u", "progress_update", position_ms=i))
        q.enqueue_change(Change(f"{tag}-{i}", "srv", "u", "progress_update", position_ms=i))
    q.close()
""")

KILLED_WRITER = textwrap.dedent("""
    import sys
    from playbacksync.changes import Change
    from playbacksync.queue import SyncQueue
    q = SyncQueue(sys.argv[1])
    i = 0
    while True:
        row_id = q.enqueue_change(Change(f"item{i}", "srv", "u", "progress_update", position_ms=i))
        print("ack", row_id, i, flush=True)          # acknowledged: enqueue returned
        if i % 5 == 4:
            for r in q.claim("srv", limit=2):           # leave some rows in flight
                print("claimed", r.id, flush=True)
        i += 1
""")


def spawn(code, *args):
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def start_together(procs):
    for p in procs:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()


@pytest.mark.timeout(60)
def test_two_processes_never_claim_the_same_row(tmp_path):
    q = SyncQueue(str(tmp_path))
    ids = [q.enqueue_change(change("P", pos=n, item=f"i{n}")) for n in range(300)]
    q.close()
    procs = [spawn(CLAIMER, tmp_path, 3), spawn(CLAIMER, tmp_path, 5)]
    start_together(procs)
    claimed = []
    per_proc = []
    for p in procs:
        out, err = p.communicate(timeout=50)
        assert p.returncode == 0, err
        mine = [int(line.split()[1]) for line in out.splitlines() if line.startswith("claimed")]
        per_proc.append(mine)
        claimed.extend(mine)
    assert len(claimed) == len(set(claimed)), "a row was claimed twice"
    assert sorted(claimed) == ids
    assert all(per_proc), "both processes should have claimed something"
    assert {r["status"] for r in all_rows(q.path)} == {"synced"}


@pytest.mark.timeout(60)
def test_two_processes_coalescing_the_same_item_keep_one_row(tmp_path):
    SyncQueue(str(tmp_path)).close()
    procs = [spawn(ENQUEUER, tmp_path, "a", 60), spawn(ENQUEUER, tmp_path, "b", 60)]
    start_together(procs)
    for p in procs:
        _, err = p.communicate(timeout=50)
        assert p.returncode == 0, err
    rows = all_rows(str(tmp_path / "queue.sqlite"))
    shared = [r for r in rows if r["media_item_id"] == "shared"]
    assert len(shared) == 1 and shared[0]["position_ms"] == 59
    assert len(rows) == 1 + 2 * 60


@pytest.mark.timeout(60)
def test_sigkill_mid_write_loses_no_acknowledged_change_and_strands_none(tmp_path):
    SyncQueue(str(tmp_path)).close()
    path = str(tmp_path / "queue.sqlite")
    p = spawn(KILLED_WRITER, tmp_path)
    acked, claimed = {}, set()
    deadline = time.monotonic() + 30
    try:
        while len(acked) < 200 and time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            parts = line.split()
            if parts[0] == "ack":
                acked[int(parts[1])] = int(parts[2])
            elif parts[0] == "claimed":
                claimed.add(int(parts[1]))
    finally:
        os.kill(p.pid, signal.SIGKILL)                # mid-write: it never stops on its own
        p.wait(10)
    assert p.returncode == -signal.SIGKILL
    assert len(acked) >= 200, p.stderr.read()

    # Before anyone recovers: rows really were left in flight by the dead process.
    con = raw(path)
    stranded = con.execute("SELECT COUNT(*) FROM playback_sync_queue WHERE status = 'syncing'").fetchone()[0]
    con.close()
    assert stranded > 0

    q = SyncQueue(str(tmp_path))                       # open = integrity check + recovery
    try:
        assert q.moved_aside is None
        rows = {r.id: r for r in q.rows()}
        for row_id, i in acked.items():
            assert row_id in rows, f"acknowledged change {row_id} lost"
            assert rows[row_id].media_item_id == f"item{i}" and rows[row_id].position_ms == i
        assert not [r for r in rows.values() if r.status == SYNCING]
        assert all(rows[i].status == PENDING for i in claimed)
    finally:
        q.close()


OPENER = textwrap.dedent("""
    import sys
    from playbacksync.changes import Change
    from playbacksync.queue import SyncQueue
    print("ready", flush=True)
    sys.stdin.readline()
    q = SyncQueue(sys.argv[1])                   # all create and migrate the same new file at once
    print("id", q.enqueue_change(Change(sys.argv[2], "srv", "u", "mark_watched")), flush=True)
    q.close()
""")


@pytest.mark.timeout(60)
def test_processes_creating_the_same_new_queue_at_once(tmp_path):
    procs = [spawn(OPENER, tmp_path / "new", f"item{n}") for n in range(3)]
    start_together(procs)
    for p in procs:
        out, err = p.communicate(timeout=50)
        assert p.returncode == 0, err
    rows = all_rows(str(tmp_path / "new" / "queue.sqlite"))
    assert sorted(r["media_item_id"] for r in rows) == ["item0", "item1", "item2"]
