"""Queue costs and bounds, measured on real files in a temporary folder.

Q1  Cost of one ``enqueue_change`` (µs, median and p95) — a progress update
    coalesced in place (the usual case while playing) and one adding a row —
    against a raw stdlib sqlite3 INSERT, one transaction each, same journal
    (WAL) and synchronous setting, same run. Printed as a ratio. For the
    queue's default ``synchronous=FULL`` (an fsync per commit) and for NORMAL.
Q2  Rows after 100 hours of offline playback of 50 items on 2 servers: progress
    every 10 s, each viewing to the end (mark_watched), some items rewatched
    part way, some marked unwatched afterwards; prune once a simulated day.
    Goal: at most 2 rows waiting per item and server. Rows closed as
    superseded are kept until pruned and are printed too.
Q3  Time to open an existing queue (read-only integrity check, migration
    check, crash recovery, prune).
Q4  Time to open a queue left by a killed process with a -wal grown to the
    autocheckpoint size (~4 MB): the -wal frame checksums of its current
    generation are verified and the full integrity_check runs. Printed as a
    ratio to Q3's clean open, same run. (Worst case, 1000 current frames just
    before a checkpoint: ~0.3 s for the checksums alone.)

Usage: python bench/bench_queue.py [--samples N]
``main()`` returns the figures as a dict (for bench/run_all.py).
"""
from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "plugin"))

GOAL_ROWS_PER_ITEM_SERVER = 2


def _stats(samples):
    samples = sorted(samples)
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def _time_calls(fn, n):
    out = []
    for i in range(n):
        t = time.perf_counter_ns()
        fn(i)
        out.append((time.perf_counter_ns() - t) / 1000.0)
    return out


def bench_raw_insert(folder, n, synchronous):
    path = os.path.join(folder, f"raw-{synchronous}.sqlite")
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute(f"PRAGMA synchronous={synchronous}")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, item TEXT, source TEXT, user TEXT, "
                "kind TEXT, pos INTEGER, created REAL)")

    def insert(i):
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO t (item, source, user, kind, pos, created) VALUES (?, ?, ?, ?, ?, ?)",
                    (f"item{i}", "srv", "u", "progress_update", i, time.time()))
        con.execute("COMMIT")

    samples = _time_calls(insert, n)
    con.close()
    return samples


def bench_enqueue(folder, n, synchronous):
    from playbacksync.changes import Change
    from playbacksync.queue import SyncQueue

    q = SyncQueue(os.path.join(folder, f"q-{synchronous}"), synchronous=synchronous)
    for i in range(50):                      # warm up: statements compiled, pool filled
        q.enqueue_change(Change("warm", "srv", "u", "progress_update", position_ms=i))
    coalesced = _time_calls(lambda i: q.enqueue_change(
        Change("playing", "srv", "u", "progress_update", position_ms=i * 10_000, duration_ms=3_600_000)), n)
    added = _time_calls(lambda i: q.enqueue_change(
        Change(f"item{i}", "srv", "u", "progress_update", position_ms=i, duration_ms=3_600_000)), n)
    q.close()
    return coalesced, added


def bench_open(folder, n=30):
    """Opening an existing queue (integrity check, migration check, recovery, prune)."""
    from playbacksync.changes import Change
    from playbacksync.queue import SyncQueue

    where = os.path.join(folder, "open")
    q = SyncQueue(where)
    for i in range(500):
        q.enqueue_change(Change(f"item{i}", "srv", "u", "progress_update", position_ms=i))
    q.close()
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        SyncQueue(where).close()
        samples.append((time.perf_counter() - t) * 1000)
    return samples


def bench_open_after_kill(folder, n=10):
    """Opening a copy of a queue whose -wal holds 1000 frames and whose owner died (unclean)."""
    import shutil

    from playbacksync.changes import Change
    from playbacksync.queue import SyncQueue

    src = os.path.join(folder, "killed-src")
    q = SyncQueue(src, synchronous="NORMAL")  # (only to fill the -wal quickly)
    i = 0
    while not os.path.exists(os.path.join(src, "queue.sqlite-wal")) or \
            os.path.getsize(os.path.join(src, "queue.sqlite-wal")) < 1000 * (4096 + 24):
        q.enqueue_change(Change(f"item{i}", "srv", "u", "mark_watched"))  # a new row each: the -wal grows
        i += 1
        if i > 20000:
            break
    samples = []
    for k in range(n):
        where = os.path.join(folder, f"killed-{k}")
        os.makedirs(os.path.join(where, "queue-owners"))
        for suffix in ("", "-wal"):
            shutil.copyfile(os.path.join(src, "queue.sqlite" + suffix), os.path.join(where, "queue.sqlite" + suffix))
        open(os.path.join(where, "queue-owners", "dead.lock"), "w").close()  # an owner that died
        t = time.perf_counter()
        SyncQueue(where).close()
        samples.append((time.perf_counter() - t) * 1000)
    q.close()
    return samples


def simulate_offline(folder, hours=100.0, items=50, servers=("plex", "jellyfin"), seed=7):
    """100 h of playback while every server is unreachable: nothing is ever claimed."""
    from playbacksync.changes import Change
    from playbacksync.queue import SyncQueue

    rng = random.Random(seed)
    now = [1_700_000_000.0]
    q = SyncQueue(os.path.join(folder, "offline"), clock=lambda: now[0])
    durations = {f"item{i}": rng.randint(20, 120) * 60 for i in range(items)}
    watched = Counter()
    enqueued = 0
    played = 0.0
    next_prune = now[0] + 86400

    def send(item, kind, pos=None):
        nonlocal enqueued
        for s in servers:
            q.enqueue_change(Change(item, s, "viewer", kind, position_ms=pos,
                                    duration_ms=durations[item] * 1000, completed=kind == "mark_watched",
                                    created_at=now[0]))
            enqueued += 1

    while played < hours * 3600:
        item = rng.choice(sorted(durations))
        length = durations[item]
        rewatch = watched[item] > 0 and rng.random() < 0.5
        stop = rng.randint(length // 5, length // 2) if rewatch else length   # a rewatch may stop part way
        for t in range(0, stop, 10):
            now[0] += 10
            played += 10
            send(item, "progress_update", t * 1000)
        if stop >= length:
            send(item, "mark_watched")
            watched[item] += 1
            if rng.random() < 0.15:
                send(item, "mark_unwatched")          # the viewer unmarks it
        now[0] += rng.randint(60, 600)                # a pause between viewings
        if now[0] >= next_prune:                      # the player is started again: prune runs at open
            q.prune()
            next_prune += 86400
    rows = q.rows()
    q.close()
    waiting = Counter((r.source_id, r.media_item_id) for r in rows if r.status in ("pending", "syncing", "failed"))
    closed = sum(1 for r in rows if r.status == "synced")
    return {
        "hours": hours, "items": items, "servers": len(servers), "changes_enqueued": enqueued,
        "rows_waiting": sum(waiting.values()),
        "max_rows_waiting_per_item_server": max(waiting.values()) if waiting else 0,
        "rows_closed_superseded_kept": closed,
        "rows_in_file": len(rows),
        "simulated_days": round((now[0] - 1_700_000_000.0) / 86400, 1),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args(argv)
    figures = {}
    with tempfile.TemporaryDirectory(prefix="bench-queue-") as folder:
        for sync in ("FULL", "NORMAL"):
            n = args.samples if sync == "NORMAL" else max(200, args.samples // 4)
            raw_med, raw_p95 = _stats(bench_raw_insert(folder, n, sync))
            coalesced, added = bench_enqueue(folder, n, sync)
            c_med, c_p95 = _stats(coalesced)
            a_med, a_p95 = _stats(added)
            key = sync.lower()
            figures[f"raw_insert_us_median_{key}"] = round(raw_med, 1)
            figures[f"raw_insert_us_p95_{key}"] = round(raw_p95, 1)
            figures[f"enqueue_coalesced_us_median_{key}"] = round(c_med, 1)
            figures[f"enqueue_coalesced_us_p95_{key}"] = round(c_p95, 1)
            figures[f"enqueue_new_row_us_median_{key}"] = round(a_med, 1)
            figures[f"enqueue_new_row_us_p95_{key}"] = round(a_p95, 1)
            figures[f"enqueue_ratio_to_raw_insert_{key}"] = round(c_med / raw_med, 1)
            note = " — the queue's default" if sync == "FULL" else ""
            print(f"Q1 enqueue, synchronous={sync}{note} ({n} samples each, WAL):")
            print(f"   raw sqlite3 INSERT (baseline)   median {raw_med:8.1f} µs   p95 {raw_p95:8.1f} µs")
            print(f"   enqueue, coalesced in place     median {c_med:8.1f} µs   p95 {c_p95:8.1f} µs"
                  f"   = {c_med / raw_med:.1f}× baseline")
            print(f"   enqueue, new row                median {a_med:8.1f} µs   p95 {a_p95:8.1f} µs"
                  f"   = {a_med / raw_med:.1f}× baseline")
        open_med, open_p95 = _stats(bench_open(folder))
        figures["open_existing_ms_median"] = round(open_med, 2)
        figures["open_existing_ms_p95"] = round(open_p95, 2)
        killed_med, killed_p95 = _stats(bench_open_after_kill(folder))
        figures["open_after_kill_full_wal_ms_median"] = round(killed_med, 2)
        figures["open_after_kill_ratio_to_clean_open"] = round(killed_med / open_med, 1)
        sim = simulate_offline(folder)
    figures.update({f"offline_{k}": v for k, v in sim.items()})
    ok = sim["max_rows_waiting_per_item_server"] <= GOAL_ROWS_PER_ITEM_SERVER
    figures["offline_goal_rows_per_item_server"] = GOAL_ROWS_PER_ITEM_SERVER
    figures["offline_goal_met"] = ok
    print(f"Q2 {sim['hours']:.0f} h offline, {sim['items']} items × {sim['servers']} servers "
          f"({sim['changes_enqueued']} changes enqueued over {sim['simulated_days']} simulated days):")
    print(f"   rows waiting to be sent          {sim['rows_waiting']}"
          f"  (at most {sim['max_rows_waiting_per_item_server']} per item and server;"
          f" goal <= {GOAL_ROWS_PER_ITEM_SERVER}: {'PASS' if ok else 'FALLS SHORT'})")
    print(f"   closed as superseded, kept until pruned  {sim['rows_closed_superseded_kept']}"
          f"  (rows in the file: {sim['rows_in_file']})")
    print(f"Q3 open an existing queue of 500 rows (check, migration check, recover, prune): "
          f"median {open_med:.1f} ms, p95 {open_p95:.1f} ms (file at the schema head: stdlib sqlite3 only, "
          f"dataset/alembic not used)")
    print(f"Q4 open after a killed process left a full -wal (frame checksums + full integrity check): "
          f"median {killed_med:.1f} ms, p95 {killed_p95:.1f} ms = {killed_med / open_med:.1f}× Q3's clean open")
    return figures


if __name__ == "__main__":
    main()
