"""Runs every benchmark and prints one table: each figure, its goal, pass or falls short.

    make bench                     # or: python bench/run_all.py [--quick]

Each figure is measured against a baseline taken in the same run (bare libmpv,
a raw sqlite3 insert, requests × latency / connections), because machines are
noisy. ``--quick`` uses fewer trials and a shorter clip, for a smoke run.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "bench"), os.path.join(ROOT, "plugin")]


def _run(label, fn, verbose):
    print(f"running {label} ...", flush=True)
    t0 = time.monotonic()
    out = io.StringIO()
    with contextlib.redirect_stdout(sys.stdout if verbose else out):
        figures = fn()
    print(f"  done in {time.monotonic() - t0:.0f} s", flush=True)
    return figures


def rows(q: dict, w: dict, m: dict) -> list:
    """(id, what, measured, goal, ok) for every figure the issues set a goal for."""
    per_server = w["steady_hour_requests_per_server"]
    return [
        ("P1", "CPU, plugin-attached playback / bare libmpv (100× speed, whole process)",
         f"{m['P1_cpu_ratio']:.3f}×", f"≤ {m['P1_goal']}×", m["P1_pass"]),
        ("P2", "requests per server in 1 h of steady playback",
         ", ".join(f"{k} {v}" for k, v in per_server.items()), f"≤ {w['steady_hour_goal']}",
         w["steady_hour_goal_met"]),
        ("P2", "writes per changed item after an offline spell",
         ", ".join(f"{n} {w[f'offline_{n}_writes_per_changed_item']:g}" for n in ("jf", "plex")), "exactly 1",
         w["offline_goal_met"]),
        ("P3", "queue rows per item and server after 100 h offline (50 items)",
         str(q["offline_max_rows_waiting_per_item_server"]), f"≤ {q['offline_goal_rows_per_item_server']}",
         q["offline_goal_met"]),
        ("P4", "end of file → server shows watched, p50 / p99",
         f"{w['latency_p50_ms']:.0f} / {w['latency_p99_ms']:.0f} ms", "≤ 100 / ≤ 500 ms", w["latency_goal_met"]),
        ("P5", f"drain of {w['drain_changes']} changes, 2 servers, +20 ms: time / (requests × latency / connections)",
         f"{w['drain_ratio']:.3f}", "≤ 1.25", w["drain_goal_met"]),
        ("P5", "the same drain / (changes × latency / connections): one round trip per change",
         f"{w['drain_per_change_ratio']:.3f}", "≤ 0.6", w["drain_per_change_goal_met"]),
        ("P5", "the same drain with spec-validating fakes (their CPU shares the cores)",
         f"{w['drain_validating_fakes_ratio']:.3f}", "—", None),
        ("P6", "added time to first frame", f"{m['P6_added_ms']:+.0f} ms", f"≤ +{m['P6_goal_ms']:g} ms",
         m["P6_pass"]),
        ("Q1", "enqueue cost (synchronous=FULL), median; raw sqlite3 insert in the same run",
         f"{q['enqueue_coalesced_us_median_full']:.0f} µs vs {q['raw_insert_us_median_full']:.0f} µs", "—", None),
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer trials, shorter clip (smoke run)")
    ap.add_argument("--verbose", action="store_true", help="show each bench's own output")
    args = ap.parse_args(argv)
    import bench_mpv
    import bench_queue
    import bench_worker

    q = _run("queue bench", lambda: bench_queue.main(["--samples", "400" if args.quick else "2000"]), args.verbose)
    w = _run("worker bench", lambda: bench_worker.main(
        ["--trials", "40", "--changes", "1000"] if args.quick else ["--trials", "200", "--changes", "10000"]),
        args.verbose)
    m = _run("mpv bench", lambda: bench_mpv.main(runs=2 if args.quick else 5, minutes=3.0 if args.quick else 24.0,
                                                 quiet=not args.verbose), args.verbose)
    table = rows(q, w, m)
    verdict = {True: "pass", False: "falls short", None: "(figure)"}
    print()
    print("| | figure | measured | goal | result |")
    print("|---|---|---|---|---|")
    for pid, what, measured, goal, ok in table:
        print(f"| {pid} | {what} | {measured} | {goal} | {verdict[ok]} |")
    short = [pid for pid, *_, ok in table if ok is False]
    print()
    print("all goals met" if not short else "falls short: " + ", ".join(short))
    return 0


if __name__ == "__main__":
    sys.exit(main())
