"""Runs every benchmark and prints one table: each figure, its goal, pass or falls short.

    make bench                     # or: python bench/run_all.py [--quick]

Each figure is measured against a baseline taken in the same run (bare libmpv,
bare Debian mpv, a raw sqlite3 insert, requests × latency / connections), because machines are
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


def identify_rows(i: dict) -> list:
    """The identification figures (bench_identify.py) for the table."""
    both = ("jellyfin", "plex")
    each = lambda fmt: ", ".join("%s %s" % (s, fmt(i[s])) for s in both)  # noqa: E731
    n = "{:,}".format(i["items"])
    return [
        ("I1", f"full index refresh, {n} items, +20 ms: requests, time (latency floor)",
         each(lambda r: "%d req %.0f s (%.1f s)" % (r["full_requests"], r["full_s"], r["full_floor_s"])), "—", None),
        ("I2", "incremental refresh after 100 changed items: requests per server",
         each(lambda r: "%d (%.1f s)" % (r["incremental_requests"], r["incremental_s"])), "≤ 5",
         i["incremental_goal_met"]),
        ("I3", "identify with the index built (a lookup), p50 / p99, requests (raw SQLite lookup p50)",
         each(lambda r: "%.2f / %.2f ms, %d req (%.3f)" % (r["identify_p50_ms"], r["identify_p99_ms"],
                                                           r["lookup_requests"], r["raw_sqlite_lookup_p50_ms"])),
         "p99 ≤ 20 ms", i["p99_goal_met"]),
        ("I3", "what a write uses: confirmed with the server (one request, +20 ms)",
         each(lambda r: "%.0f / %.0f ms" % (r["identify_checked_p50_ms"], r["identify_checked_p99_ms"])), "—", None),
        ("I4", "peak memory of a full refresh (reading the listing alone)",
         each(lambda r: "%.1f MB (%.1f)" % (r["refresh_peak_mb"], r["listing_only_peak_mb"])), "≤ 100 MB",
         i["memory_goal_met"]),
    ]


def rows(q: dict, w: dict, m: dict, a: dict, i: dict = None) -> list:
    """(id, what, measured, goal, ok) for every figure the issues set a goal for."""
    per_server = w["steady_hour_requests_per_server"]
    return (identify_rows(i) if i else []) + [
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
        ("P5", "the same drain / (changes × latency / all connections): one round trip per change",
         f"{w['drain_per_change_ratio']:.3f}", "—", None),
        ("P5b", "issue 12: the same drain / (changes × round trip / connections per server), "
                "round trip measured in the run (a bare client, one request per change)",
         f"{w['drain_issue_ratio_measured']:.3f} (nominal 20 ms: {w['drain_issue_ratio']:.3f}, "
         f"bare client {w['drain_baseline_issue_ratio']:.3f})", "≤ 0.6", w["drain_issue_goal_met"]),
        ("P5", "the same drain with spec-validating fakes (their CPU shares the cores)",
         f"{w['drain_validating_fakes_ratio']:.3f}", "—", None),
        ("P6", "added time to first frame", f"{m['P6_added_ms']:+.0f} ms", f"≤ +{m['P6_goal_ms']:g} ms",
         m["P6_pass"]),
        ("A1", "CPU, Debian mpv + the attached agent (installed script) / bare mpv (100× speed)",
         f"{a['A1_cpu_ratio']:.3f}×", f"≤ {a['A1_goal']}×", a["A1_pass"]),
        ("A2", "added time to first frame, script installed / not", f"{a['A2_added_ms']:+.0f} ms",
         f"≤ +{a['A2_goal_ms']:g} ms", a["A2_pass"]),
        ("A3", "end of file → server shows watched, attached agent, p50", f"{a['A3_eof_watched_p50_ms']:.0f} ms",
         f"≤ {a['A3_goal_ms']:g} ms", a["A3_pass"]),
        ("Q1", "enqueue cost (synchronous=FULL), median; raw sqlite3 insert in the same run",
         f"{q['enqueue_coalesced_us_median_full']:.0f} µs vs {q['raw_insert_us_median_full']:.0f} µs", "—", None),
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer trials, shorter clip (smoke run)")
    ap.add_argument("--verbose", action="store_true", help="show each bench's own output")
    args = ap.parse_args(argv)
    import bench_attach
    import bench_identify
    import bench_mpv
    import bench_queue
    import bench_worker

    q = _run("queue bench", lambda: bench_queue.main(["--samples", "400" if args.quick else "2000"]), args.verbose)
    w = _run("worker bench", lambda: bench_worker.main(
        ["--trials", "40", "--changes", "1000"] if args.quick else ["--trials", "200", "--changes", "10000"]),
        args.verbose)
    m = _run("mpv bench", lambda: bench_mpv.main(runs=2 if args.quick else 5, minutes=3.0 if args.quick else 24.0,
                                                 quiet=not args.verbose), args.verbose)
    a = _run("attach bench", lambda: bench_attach.main(runs=2 if args.quick else 5, minutes=3.0 if args.quick else 24.0,
                                                       trials=3 if args.quick else 7,
                                                       first_frame_runs=5 if args.quick else 15, quiet=not args.verbose),
             args.verbose)
    i = _run("identification bench", lambda: bench_identify.main(
        ["--items", "10000", "--lookups", "300"] if args.quick else []), args.verbose)
    table = rows(q, w, m, a, i)
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
