"""Crash trials: real `playback-sync play` processes (libmpv) killed with SIGKILL at
random moments, restarted with `playback-sync sync`; nothing acknowledged is lost.

The harness is tests/faults/crash.py (bench/soak.py runs 200 of the same trials).
PLAYBACK_SYNC_CRASH_SEED replays a run; the seed is printed.
"""
import os
import random

import pytest

pytest.importorskip("mpv")

from tests.faults.crash import FAULT_MODES, KILL_MODES, PROGRESS_INTERVAL, run_trials, summarize  # noqa: E402

pytestmark = [pytest.mark.mpv, pytest.mark.slow]

TRIALS = 30


@pytest.mark.timeout(400)
def test_thirty_sigkills_lose_nothing(tmp_path):
    seed = int(os.environ.get("PLAYBACK_SYNC_CRASH_SEED") or random.SystemRandom().randrange(1 << 30))
    print(f"\ncrash trials: seed {seed}")
    results = run_trials(tmp_path, TRIALS, seed=seed)
    figures = summarize(results)
    for r in results:
        print(f"  #{r.n:02d} {r.mode:8s} killed={r.killed!s:5s} at {r.kill_after_s:5.2f}s pos {r.last_position_s:4.2f}s"
              f" acked {r.acknowledged} server {'watched' if r.server_played else f'{r.server_position_s:.2f}s'}"
              f" err {r.position_error_s:.2f}s {'; '.join(r.notes)}")
    print("crash trial figures:", figures)
    # (A clean quit that never saved its watched mark is a known bug that needs a slow first
    # identification to show; the xfail test below reproduces it deterministically.)
    bad = [r for r in results if r.lost or r.stranded or r.duplicates or r.still_queued]
    assert not bad, "\n".join(f"trial {r.n} ({r.mode}, seed {seed}): {r}" for r in bad)
    assert figures["lost"] == 0 and figures["stranded_in_syncing"] == 0 and figures["watched_applied_twice"] == 0
    # Once a change was saved, the server trails the player by at most the progress interval.
    assert figures["max_position_error_after_first_save_s"] <= PROGRESS_INTERVAL, figures
    # The trials must really have hit what they aim at, or the zeros above say little.
    killed = [r for r in results if r.killed]
    assert len(killed) >= TRIALS * 2 // 3, figures
    for mode in KILL_MODES:
        assert sum(1 for r in killed if r.mode == mode) >= 4, (mode, figures)
    assert sum(1 for r in killed if r.acknowledged) >= 5, "too few kills after a change was queued"
    assert figures["watched_on_server"] >= 3 and any(r.acknowledged == 0 for r in killed), figures


def test_a_clean_quit_while_identification_is_slow_still_saves_the_watched_mark(tmp_path):
    """The whole clip is played while the server's item listing (the first index refresh)
    takes longer than the clip: the watched mark must still reach the queue and the server."""
    import subprocess
    import sys
    import time as _time

    from tests.faults.crash import TOKEN, CrashFake, read_rows
    from tests.media import make_clip

    class SlowListing(CrashFake):
        def _respond(self, req, body, environ):
            if req.method == "GET" and req.path == "/Items":
                self._stopping.wait(6.0)
            return super()._respond(req, body, environ)

    clip = make_clip(tmp_path, 3.0, name="slow listing")
    fake = SlowListing().start()
    try:
        uid = fake.add_user("v", "p")
        fake.issue_token(uid, TOKEN)
        item = fake.add_item("c", path=str(clip), runtime_s=3)
        cfg = tmp_path / "c.toml"
        cfg.write_text(f'[[servers]]\nid = "jf"\ntype = "jellyfin"\nurl = "{fake.url}"\ntoken = "{TOKEN}"\n'
                       f'user_id = "{uid}"\n')
        env = dict(os.environ, PLAYBACK_SYNC_DATA_DIR=str(tmp_path / "data"), XDG_STATE_HOME=str(tmp_path / "st"),
                   PLAYBACK_SYNC_MPV_CONFIG_DIR=str(tmp_path))
        done = subprocess.run([sys.executable, "-m", "playbacksync.cli", "--config", str(cfg), "play", str(clip),
                               "--vo=null", "--ao=null"], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        rows = read_rows(tmp_path / "data" / "queue.sqlite")
        assert any(r["change_type"] == "mark_watched" for r in rows), rows
        deadline = _time.monotonic() + 10
        while not fake.user_data(uid, item).played and _time.monotonic() < deadline:
            subprocess.run([sys.executable, "-m", "playbacksync.cli", "--config", str(cfg), "sync", "--timeout",
                            "10"], env=env, capture_output=True, timeout=60)
        assert fake.user_data(uid, item).played
    finally:
        fake.stop(check=False)


@pytest.mark.timeout(600)
def test_issue_11_faults_lose_nothing_and_apply_nothing_twice(tmp_path):
    """One real trial per fault of issue 11 (see tests/faults/crash.py): writes applied after the
    client gave up, a quit during a held write then `sync` at once, identification failing through
    the whole viewing, and a `sync` killed while importing an older version's journal."""
    seed = int(os.environ.get("PLAYBACK_SYNC_CRASH_SEED") or random.SystemRandom().randrange(1 << 30))
    results = run_trials(tmp_path, len(FAULT_MODES), seed=seed, modes=FAULT_MODES)
    figures = summarize(results)
    print(f"\nissue 11 fault trials (seed {seed}):", figures)
    bad = [r for r in results if r.lost or r.stranded or r.duplicates or r.still_queued or r.dropped_unidentified
           or r.unsaved_clean_exit]
    assert not bad, "\n".join(f"trial {r.n} ({r.mode}, seed {seed}): {r}" for r in bad)
    assert figures["watched_on_server"] == len(FAULT_MODES), figures  # each trial's viewing reached the server
