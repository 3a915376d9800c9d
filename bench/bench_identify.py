"""Identification at scale: a library of 100,000 items behind 20 ms of added latency.

For a Jellyfin and a Plex fake (each in its own process, as a real server is),
measured over real HTTP into a real index file:

I1  full refresh: requests and time, against the latency floor (requests × 20 ms)
I2  incremental refresh after 100 items changed on the server: requests (goal ≤ 5 per server) and time
I3  identify latency with the index built, p50 / p99 (goal p99 ≤ 20 ms): a lookup through the
    connected identifier (answered from the index; the server's identity asked at most once a
    minute), with the requests it made, against a raw SQLite lookup of the same key in the same
    run; and what a write uses, confirmed with the server (one request for the item: at least
    the added latency; the worker asks it once per change it resolves)
I4  peak memory of the refresh step (tracemalloc, goal ≤ 100 MB), against the peak of
    only reading the same listing in the same run

The fakes skip their spec check here (3-4 ms of CPU a request on the same cores,
see bench_worker.py); tests always validate.

Usage: python bench/bench_identify.py [--items N]
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
import tracemalloc
from typing import Dict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "plugin")]

ADDED_LATENCY_S = 0.020
GOAL_INCREMENTAL_REQUESTS = 5
GOAL_P99_MS = 20.0
GOAL_PEAK_MB = 100.0
CHANGED = 100


def _path(kind: str, n: int) -> str:
    if kind == "episode":
        return "/srv/media/TV/Show %d/Season %02d/Show %d - S%02dE%02d.mkv" % (n // 100, n % 10, n // 100, n % 10,
                                                                            n % 100)
    return "/srv/media/Movies/Film %d (%d)/Film %d.mkv" % (n, 1950 + n % 70, n)


def _kind(n: int) -> str:
    return "movie" if n % 5 == 0 else "episode"


def _serve(conn, server_type: str, items: int, delay: float) -> None:
    """Child process: one fake with ``items`` items; answers commands over ``conn``."""
    import logging

    logging.disable(logging.WARNING)
    if server_type == "jellyfin":
        from tests.fakes.jellyfin import JellyfinFake

        fake = JellyfinFake()
        uid = fake.add_user("alice", "pass")
        token = fake.issue_token(uid)
        old = time.time() - 2 * 86400  # a library scanned days ago
        ids = []
        for n in range(items):
            iid = fake.add_item("Item %d" % n, _path(_kind(n), n), {"Imdb": "tt%07d" % n, "Tmdb": str(n)},
                                type="Movie" if _kind(n) == "movie" else "Episode")
            fake.items[iid].saved_at = old
            ids.append(iid)
    else:
        from tests.fakes.plex import FakePlex
        from tests.fakes.plex_state import Item

        fake = FakePlex(seed=False)
        fake.library.add_section("1", "Movies", "movie", "/srv/media/Movies")
        fake.library.add_section("2", "TV", "show", "/srv/media/TV")
        token, uid, ids = fake.token, "", []
        for n in range(items):
            key = str(1000 + n)
            fake.library.add_item(Item(rating_key=key, section="1" if _kind(n) == "movie" else "2", type=_kind(n),
                                       title="Item %d" % n, duration=1_200_000, parts=[(100_000 + n, _path(_kind(n), n))],
                                       guids=["imdb://tt%07d" % n, "tmdb://%d" % n], added_at=1_600_000_000 + n))
            ids.append(key)
    fake.validator_for = lambda method, path: None
    fake.start()
    fake.delay(delay, times=10 ** 9)
    conn.send((fake.url, token, uid, ids))
    while True:
        cmd, arg = conn.recv()
        if cmd == "count":
            conn.send(len(fake.requests))
        elif cmd == "change":  # a library scan touched these items: new file names
            for n in arg:
                if server_type == "jellyfin":
                    fake.update_item(ids[n], path=_path(_kind(n), n).replace(".mkv", " (rescan).mkv"))
                else:
                    item = fake.library.items[ids[n]]
                    item.parts = [(item.parts[0][0], item.parts[0][1].replace(".mkv", " (rescan).mkv"))]
                    item.updated_at = int(time.time()) + 10_000_000  # after every added_at
            conn.send(True)
        else:
            fake.stop(check=False)
            conn.send(True)
            return


class _Remote:
    def __init__(self, server_type: str, items: int, delay: float):
        import multiprocessing as mp

        self.server_type = server_type
        self.conn, child = mp.get_context("spawn").Pipe()
        self.proc = mp.get_context("spawn").Process(target=_serve, args=(child, server_type, items, delay),
                                                    daemon=True)
        self.proc.start()
        self.url, self.token, self.user_id, self.ids = self.conn.recv()

    def ask(self, cmd, arg=None):
        self.conn.send((cmd, arg))
        return self.conn.recv()

    def stop(self):
        self.ask("stop")
        self.proc.join(10)


def _pct(samples, q):
    samples = sorted(samples)
    return samples[min(len(samples) - 1, int(round(q * (len(samples) - 1))))]


def bench_server(server_type: str, items: int, folder: str, lookups: int = 1000) -> Dict:
    from playbacksync.backends import make_backend
    from playbacksync.config import Config, PathMapping, ServerConfig
    from playbacksync.identify import Identifier, ItemIndex
    from playbacksync.tracker.events import MediaRef

    remote = _Remote(server_type, items, ADDED_LATENCY_S)
    try:
        server = ServerConfig(id=server_type, type=server_type, url=remote.url, token=remote.token,
                              user_id=remote.user_id, device_id="bench", read_timeout=120.0,
                              path_mappings=(PathMapping("/mnt/media", "/srv/media"),))
        backend = make_backend(server)
        index = ItemIndex(os.path.join(folder, server_type))
        progress = []
        ident = Identifier(Config(servers=(server,)), {server.id: backend}, index, miss_wait=0,
                           on_progress=progress.append)
        out: Dict = {"items": items}

        # I1: the full refresh, timed
        before = remote.ask("count")
        t0 = time.monotonic()
        err = ident.refresh(server.id, timeout=1800)[server.id]
        out["full_s"] = round(time.monotonic() - t0, 2)
        assert err is None, err
        out["full_requests"] = remote.ask("count") - before
        out["full_floor_s"] = round(out["full_requests"] * ADDED_LATENCY_S, 2)
        out["progress_reports"] = len(progress)
        assert index.info(server.id).item_count == items

        # I4: peak memory of a (forced) full refresh, and of only reading the same listing
        tracemalloc.start()
        seen = sum(1 for _ in backend.iter_items())
        out["listing_only_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 2 ** 20, 1)
        tracemalloc.stop()
        assert seen == items, (seen, items)
        tracemalloc.start()
        err = ident.refresh(server.id, timeout=1800, full=True)[server.id]
        out["refresh_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 2 ** 20, 1)
        tracemalloc.stop()
        assert err is None, err

        # I2: 100 items changed on the server, then a refresh
        changed = random.Random(7).sample(range(items), CHANGED)
        remote.ask("change", changed)
        before = remote.ask("count")
        t0 = time.monotonic()
        err = ident.refresh(server.id, timeout=600)[server.id]
        out["incremental_s"] = round(time.monotonic() - t0, 2)
        assert err is None, err
        out["incremental_requests"] = remote.ask("count") - before
        renamed = MediaRef(path=_path(_kind(changed[0]), changed[0]).replace("/srv/media", "/mnt/media")
                           .replace(".mkv", " (rescan).mkv"))
        out["incremental_found_change"] = ident.identify_one(server.id, renamed).item_id == remote.ids[changed[0]]

        # I3: lookups with the index built
        rng = random.Random(11)
        picks = [n for n in (rng.randrange(items) for _ in range(lookups * 2)) if n not in set(changed)][:lookups]
        media = [MediaRef(path=_path(_kind(n), n).replace("/srv/media", "/mnt/media")) for n in picks]

        # a lookup (the index's answer, the connected identifier as the player's prefetch uses
        # it), then what a write uses: confirmed with the server (one request for the item)
        def timed(confirm):
            samples, wrong = [], 0
            for n, m in zip(picks, media):
                t = time.perf_counter()
                match = ident.identify_one(server.id, m, confirm=confirm)
                samples.append((time.perf_counter() - t) * 1000)
                wrong += match.item_id != remote.ids[n]
            return samples, wrong

        before = remote.ask("count")
        cached, wrong1 = timed(False)
        out["lookup_requests"] = remote.ask("count") - before
        checked, wrong2 = timed(True)
        out.update(identify_p50_ms=round(statistics.median(cached), 3), identify_p99_ms=round(_pct(cached, 0.99), 3),
                   identify_checked_p50_ms=round(statistics.median(checked), 2),
                   identify_checked_p99_ms=round(_pct(checked, 0.99), 2), identify_misses=wrong1 + wrong2)
        con = sqlite3.connect(index.path)
        keys = [index.get(server.id, remote.ids[n]).paths[0] for n in picks[:200]]
        from playbacksync.identify.paths import path_key

        raw = []
        for k in keys:
            key = path_key(k)
            t = time.perf_counter()
            con.execute("SELECT item_id FROM paths WHERE server_id = ? AND path_key = ?", (server.id, key)).fetchall()
            raw.append((time.perf_counter() - t) * 1000)
        con.close()
        out["raw_sqlite_lookup_p50_ms"] = round(statistics.median(raw), 3)
        ident.close()
        index.close()
        backend.close()
        return out
    finally:
        remote.stop()


def main(argv=None) -> Dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--lookups", type=int, default=1000)
    args = ap.parse_args(argv)
    figures: Dict = {"items": args.items, "added_latency_ms": ADDED_LATENCY_S * 1000}
    with tempfile.TemporaryDirectory(prefix="bench-identify-") as folder:
        for server_type in ("jellyfin", "plex"):
            r = bench_server(server_type, args.items, folder, args.lookups)
            figures[server_type] = r
            print("%s, %d items, +%d ms:" % (server_type, args.items, ADDED_LATENCY_S * 1000))
            print("  I1 full refresh: %d requests, %.1f s (latency floor %.1f s)"
                  % (r["full_requests"], r["full_s"], r["full_floor_s"]))
            print("  I2 incremental after %d changes: %d requests, %.2f s (found the renamed file: %s)"
                  % (CHANGED, r["incremental_requests"], r["incremental_s"], r["incremental_found_change"]))
            print("  I3 identify p50/p99: %.2f / %.2f ms a lookup (%d requests for %d lookups; raw SQLite "
                  "lookup p50 %.3f ms); %.1f / %.1f ms confirmed for a write; misses %d"
                  % (r["identify_p50_ms"], r["identify_p99_ms"], r["lookup_requests"], args.lookups,
                     r["raw_sqlite_lookup_p50_ms"],
                     r["identify_checked_p50_ms"], r["identify_checked_p99_ms"], r["identify_misses"]))
            print("  I4 refresh peak memory %.1f MB (reading the listing alone: %.1f MB); %d progress reports"
                  % (r["refresh_peak_mb"], r["listing_only_peak_mb"], r["progress_reports"]))
    figures["incremental_goal_met"] = all(figures[s]["incremental_requests"] <= GOAL_INCREMENTAL_REQUESTS
                                          for s in ("jellyfin", "plex"))
    figures["p99_goal_met"] = all(figures[s]["identify_p99_ms"] <= GOAL_P99_MS for s in ("jellyfin", "plex"))
    figures["memory_goal_met"] = all(figures[s]["refresh_peak_mb"] <= GOAL_PEAK_MB for s in ("jellyfin", "plex"))
    return figures


if __name__ == "__main__":
    main()
