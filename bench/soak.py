"""`make soak`: crash trials at length (default 200), printing the figures.

Each trial plays a generated 4 s clip in a real `playback-sync play` (libmpv,
--vo=null --ao=null) against the spec-validating fake Jellyfin, kills it with
SIGKILL at a random moment (during playback, right after a queue write, or
while a write request is held in the slowed server), or lets it run into the
faults of issue 11 (writes applied after the client gave up, a quit during a
held write then `sync` at once, identification failing or stalling the whole
viewing, a killed `sync` importing an older version's journal, a player killed
in another PID namespace mid-request, the queue file damaged after a kill),
then drains with `playback-sync sync`; see tests/faults/crash.py. Prints lost,
applied twice, dropped unidentified and stranded (and the rows a damage report
counts as lost). Exit status 1 when any acknowledged change
was lost, left in `syncing`, or applied twice, a viewing was dropped while
unidentified, or a play that ended by itself never saved its watched mark.

    .venv/bin/python bench/soak.py --trials 200 [--jobs 4] [--seed N] [--modes a,b] [--json]

``--jobs N`` runs the trials in N shards at once, each with its own fake server,
folder and seed (seed, seed+1, …): most of a trial is waiting (a send in doubt
waits out its window), so shards cut the wall time without changing what a
trial does. The figures are summed over all shards.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.faults.crash import MODES, PROGRESS_INTERVAL, run_trials, summarize  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--seed", type=int, default=None, help="replay a run (default: random, printed)")
    ap.add_argument("--jobs", type=int, default=1, help="shards of trials run at once (default 1)")
    ap.add_argument("--clip-seconds", type=float, default=4.0)
    ap.add_argument("--modes", default=",".join(MODES),
                    help=f"trial modes, taken in turn (default: all: {','.join(MODES)})")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON only")
    ap.add_argument("--keep", action="store_true", help="keep the trial folders (printed)")
    args = ap.parse_args(argv)
    modes = tuple(m for m in args.modes.split(",") if m)
    unknown = sorted(set(modes) - set(MODES))
    if unknown or not modes:
        ap.error(f"unknown trial mode(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(MODES)}")
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    work = Path(tempfile.mkdtemp(prefix="playback-sync-soak-"))
    started = time.monotonic()

    lock = threading.Lock()
    done = [0]

    def progress(r):
        with lock:
            done[0] += 1
            count = done[0]
        if not args.json:
            flag = "" if not (r.lost or r.stranded or r.duplicates or r.still_queued or r.unsaved_clean_exit
                              or r.dropped_unidentified) \
                else "  <-- " + "; ".join(r.notes)
            damage = "".join(f"  ({n}, {r.lost_to_damage} reported lost)" for n in r.notes if n.startswith("damage:"))
            print(f"trial {count:4d}/{args.trials} {r.mode:9s} {'killed' if r.killed else 'ended '} "
                  f"at {r.kill_after_s:5.2f}s  acked {r.acknowledged}  err {r.position_error_s:4.2f}s{damage}{flag}",
                  flush=True)

    try:
        jobs = max(1, min(args.jobs, args.trials))
        shares = [args.trials // jobs + (1 if k < args.trials % jobs else 0) for k in range(jobs)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            shards = [pool.submit(run_trials, work / f"trials-{k}", n, seed=seed + k, clip_seconds=args.clip_seconds,
                                  progress=progress, modes=modes) for k, n in enumerate(shares)]
            results = [r for shard in shards for r in shard.result()]
    finally:
        if not args.keep:
            import shutil
            shutil.rmtree(work, ignore_errors=True)
    figures = summarize(results)
    figures.update(seed=seed, seconds=round(time.monotonic() - started, 1))
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print()
        print(f"crash soak: {figures['trials']} trials in {args.jobs} shard(s), {figures['killed']} killed by SIGKILL "
              f"({', '.join(f'{k} {v}' for k, v in sorted(figures['by_mode'].items()))}), seed {seed}, "
              f"{figures['seconds']} s")
        rows = [("acknowledged changes", figures["acknowledged_changes"]),
                ("acknowledged changes lost", figures["lost"]),
                ("rows stranded in syncing after restart", figures["stranded_in_syncing"]),
                ("watched applied twice on the server", figures["watched_applied_twice"]),
                ("changes still queued after the restart's drain", figures["still_queued_after_restart"]),
                ("clean exits whose watched mark was never saved", figures["clean_exits_unsaved"]),
                ("viewings dropped while unidentified", figures["dropped_unidentified"]),
                ("rows lost to queue damage, counted in its report", figures["lost_to_damage_reported"]),
                ("max position error (s), all trials", figures["max_position_error_s"]),
                ("max position error (s), once a change was saved", figures["max_position_error_after_first_save_s"]),
                ("max position error (s), killed before the first save",
                 figures["max_position_error_startup_window_s"]),
                (f"trials with position error > progress interval ({PROGRESS_INTERVAL} s)",
                 figures["position_error_over_interval"]),
                ("items watched on the server", figures["watched_on_server"])]
        width = max(len(k) for k, _ in rows)
        for k, v in rows:
            print(f"  {k.ljust(width)}  {v}")
        if args.keep:
            print(f"trial folders kept in {work}")
    bad = (figures["lost"] or figures["stranded_in_syncing"] or figures["watched_applied_twice"]
           or figures["clean_exits_unsaved"] or figures["dropped_unidentified"])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
