"""Crash trials: a real ``playback-sync play`` (libmpv, no video/audio output) against
the spec-validating fake Jellyfin, killed with SIGKILL at a random moment, then
restarted with ``playback-sync sync`` to drain. Shared by tests/test_crash_trials.py
(CI, ≥30 trials) and bench/soak.py (``make soak``, 200 trials).

A trial, for one fresh item (its own clip path) and one fresh queue folder:

1. start ``play`` with ``--input-ipc-server`` so this process can read mpv's
   ``time-pos`` (the last position the player reached) up to the kill;
2. kill it at a moment chosen by the trial's mode:
   ``playback``: a uniformly random time after the process started;
   ``enqueue``:  right after the k-th write to the queue file (its WAL changes);
   ``request``:  while a write request is held in the (slowed) fake server;
   or, in the modes of issue 11, let it run:
   ``slow``:     every write is applied after the client's read timeout gave up on it;
   ``quit``:     the player quits (end of file) while its watched write is held longer
                 than the quit's deadline, and ``sync`` runs right after;
   ``identify``: the server's item list fails the whole time the file plays
                 (identification cannot finish), and works again for ``sync``;
   ``replay``:   no player: an older version's journal (a claimed ``.<pid>`` file) is
                 in the data folder; the ``sync`` that imports it is killed at a
                 random moment, then ``sync`` runs again;
   ``stall``:    the server's item list hangs (past the read timeout) the whole time the
                 file plays: identification stalls instead of failing;
   ``namespace``: the player runs as PID 1 of its own PID namespace (a container, a
                 sandbox) and is killed while a write request is held; ``sync`` runs in
                 this namespace, where PID 1 is alive: only the owner lock tells it died
                 (root and unshare(1) only; otherwise the trial runs the player here);
   ``damage``:   killed while a write request is held (so the queue holds changes in
                 flight), then the queue file is damaged from outside
                 before ``sync`` (queue_damage.py): every acknowledged row must reach the
                 server, stay queued, or be counted lost by the salvage's report;
3. wait until the fake finished any request the dead process left in it, then
   read the queue file: every row in it was acknowledged (committed);
4. run ``playback-sync sync`` and read the queue and the server again.

Figures per trial: ``lost`` (acknowledged changes neither on the server nor
still queued), ``stranded`` (rows left in ``syncing`` after the restart),
``duplicates`` (watched applied more than once on the server, counted in the
fake), ``dropped_unidentified`` (a viewing played to its end whose watched mark is
neither on the server nor queued after ``sync``), ``lost_to_damage`` (rows the
damage report counts as lost; rows gone that it does not count are ``lost``),
``position_error_s`` (last position the player reached minus the
server's resume position; 0 when the item is watched).
"""
from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional

from tests.fakes.jellyfin import JellyfinFake
from tests.fakes.mediabrowser import TICKS_PER_SECOND
from tests.faults import queue_damage
from tests.faults.figures import (PROGRESS_INTERVAL, TrialResult, lost_and_queued, read_rows,  # noqa: F401
                                  summarize)
from tests.faults.cli import can_unshare, in_new_pid_namespace

KILL_MODES = ("playback", "enqueue", "request")  # the player is killed with SIGKILL
FAULT_MODES = ("slow", "quit", "identify", "replay")  # issue 11's faults (see the docstring)
# More of issue 11's faults, run by `make soak` (not in CI's one-trial-per-fault test: a killed or
# damaged trial need not end watched).
SOAK_MODES = ("stall", "namespace", "damage")
MODES = KILL_MODES + FAULT_MODES + SOAK_MODES
# Per mode: (read timeout of the player's config, how long the fake holds each write).
SLOW_MODES = {"slow": (1.0, 2.0), "quit": (4.0, 6.0)}
TOKEN = "crashTOKENq7w3e9r1t5y0u2"
# The mpv host samples the position once a second and the tracker sends at most one
# progress per interval from those samples, so the server may trail the player by the
# interval plus one sample period (plus the few ms of the hand-off to the queue).
SAMPLE_PERIOD = 1.0
ROOT = Path(__file__).resolve().parents[2]


class CrashFake(JellyfinFake):
    """Jellyfin that counts each played mark it applies and can hold write requests."""

    def __init__(self, **kw):
        super().__init__(version="10.10.7", **kw)
        self.played_applied: Counter = Counter()
        self.hold_writes = 0.0  # seconds each write request waits before it is handled
        self.inflight = 0
        self.arrivals = 0  # write requests that reached the server while held
        self.listing_broken = False  # the item list answers 503: identification cannot finish
        self.listing_free = threading.Event()  # cleared: the item list hangs until set (a stall)
        self.listing_free.set()

    def list_items(self, req):
        if self.listing_broken:
            from werkzeug.wrappers import Response
            return Response("busy", status=503)
        self.listing_free.wait(60)
        return super().list_items(req)

    def mark_played(self, uid, iid, when=None):
        with self.lock:
            self.played_applied[iid] += 1
        return super().mark_played(uid, iid, when)

    def _respond(self, req, body, environ):
        write = req.method in ("POST", "DELETE") and req.path.startswith(("/UserItems/", "/UserPlayedItems/"))
        hold = self.hold_writes if write else 0.0
        if not hold:
            return super()._respond(req, body, environ)
        with self.lock:
            self.inflight += 1
            self.arrivals += 1
        try:
            # The server handles the request whether or not the client is still there.
            self._stopping.wait(hold)
            return super()._respond(req, body, environ)
        finally:
            with self.lock:
                self.inflight -= 1


def _ipc_time_pos(sock: socket.socket, buf: bytearray, request_id: int, timeout: float = 0.2) -> Optional[float]:
    """mpv JSON IPC: ask time-pos, skip the event lines mpv interleaves."""
    try:
        sock.sendall(json.dumps({"command": ["get_property", "time-pos"], "request_id": request_id}).encode()
                     + b"\n")
    except OSError:  # mpv is gone (the clip ended)
        return None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        while b"\n" in buf:
            line, _, rest = bytes(buf).partition(b"\n")
            buf[:] = rest
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if msg.get("request_id") == request_id:
                data = msg.get("data")
                return float(data) if isinstance(data, (int, float)) else None
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, OSError):
            return None
        if not chunk:
            return None
        buf += chunk
    return None


class CrashRig:
    """One fake Jellyfin, one base clip, a config; ``trial(n, mode)`` runs one trial."""

    def __init__(self, workdir: Path, *, clip_seconds: float = 4.0, hold_s: float = 1.0, rng=None):
        from tests.media import make_clip

        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.clip_seconds = clip_seconds
        self.hold_s = hold_s
        self.rng = rng or random.Random()
        self.base_clip = make_clip(self.dir / "clips", clip_seconds, name="base")
        self.fake = CrashFake().start()
        self.uid = self.fake.add_user("viewer", "pw")
        self.fake.issue_token(self.uid, TOKEN)
        # Short timeouts: a write cut by a kill is in doubt for connect + read timeout + 5 s (twice the
        # timeouts for a position) before `sync` may judge it; the held write (hold_s) still answers in time.
        self.config = self._write_config("config.toml", "connect_timeout = 1.0\nread_timeout = 2.0\n")
        self.slow_configs = {mode: self._write_config(f"config-{mode}.toml",
                                                      f"connect_timeout = 1.0\nread_timeout = {read}\n")
                             for mode, (read, _hold) in SLOW_MODES.items()}
        (self.dir / "mpv-config").mkdir(exist_ok=True)
        self.namespaces = can_unshare()  # `namespace` trials need root and unshare(1)

    def _write_config(self, name: str, extra: str) -> Path:
        path = self.dir / name
        path.write_text(
            f'[sync]\nprogress_interval = {PROGRESS_INTERVAL}\nwatched_percent = 90\n\n'
            f'[[servers]]\nid = "jf"\ntype = "jellyfin"\nurl = "{self.fake.url}"\n'
            f'token = "{TOKEN}"\nuser_id = "{self.uid}"\n{extra}', encoding="utf-8")
        os.chmod(path, 0o600)
        return path

    def close(self) -> None:
        self.fake.stop(check=False)

    def violations(self) -> List[str]:
        return list(self.fake.violations)

    def env(self, trial_dir: Path, config: Optional[Path] = None) -> Dict[str, str]:
        env = dict(os.environ)
        env.update(PLAYBACK_SYNC_DATA_DIR=str(trial_dir / "data"), PLAYBACK_SYNC_CONFIG=str(config or self.config),
                   XDG_STATE_HOME=str(trial_dir / "state"), XDG_CONFIG_HOME=str(trial_dir / "xdg-config"),
                   XDG_DATA_HOME=str(trial_dir / "xdg-data"), XDG_CACHE_HOME=str(trial_dir / "cache"),
                   PLAYBACK_SYNC_MPV_CONFIG_DIR=str(self.dir / "mpv-config"),
                   PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
        env.pop("DISPLAY", None)
        return env

    def cli(self, *args: str) -> List[str]:
        return [sys.executable, "-m", "playbacksync.cli", *args]

    # -- one trial ---------------------------------------------------------------
    def trial(self, n: int, mode: str) -> TrialResult:
        rng = self.rng
        tdir = self.dir / f"trial-{n:04d}"
        tdir.mkdir()
        clip = tdir / f"clip {n}.mp4"  # a space: paths are passed as they are
        os.link(self.base_clip, clip)
        item = self.fake.add_item(f"Clip {n}", path=str(clip), runtime_s=self.clip_seconds)
        db = tdir / "data" / "queue.sqlite"
        sock_path = str(tdir / "mpv.sock")
        env = self.env(tdir, self.slow_configs.get(mode))
        if mode == "replay":
            return self._replay_trial(n, tdir, clip, item, db, env)
        self.fake.hold_writes = (self.hold_s if mode in ("request", "namespace", "damage") else SLOW_MODES[mode][1]
                                 if mode in SLOW_MODES else 0.0)
        self.fake.listing_broken = mode == "identify"
        if mode == "stall":
            self.fake.listing_free.clear()
        self.fake.arrivals = 0
        cmd = self.cli("play", str(clip), "--vo=null", "--ao=null", f"--input-ipc-server={sock_path}")
        if mode == "namespace" and self.namespaces:
            cmd = in_new_pid_namespace() + cmd
        start = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        # playback: anywhere from process start to shortly after the clip's natural end.
        kill_at = start + rng.uniform(0.0, 1.2 + self.clip_seconds)
        if mode in ("slow", "quit", "identify", "stall"):
            kill_at = float("inf")  # these play to the end and quit by themselves
        writes_to_wait = rng.randint(1, 8)  # enqueue: the k-th write of ~8 (open, changes, claims, closes)
        arrival_to_wait = rng.randint(1, 2)  # request: the progress or the watched request
        hold_kill_at = None
        wal = Path(str(db) + "-wal")
        wal_seen, writes = None, 0
        sock, buf, rid = None, bytearray(), 0
        last_pos = 0.0
        killed = False
        deadline = start + self.clip_seconds + 40
        try:
            while proc.poll() is None:
                now = time.monotonic()
                if now > deadline:
                    raise AssertionError(f"trial {n}: play did not end in time")
                if sock is None and os.path.exists(sock_path):
                    try:
                        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                        sock.connect(sock_path)
                    except OSError:
                        sock = None
                fire = False
                if mode == "playback":
                    fire = now >= kill_at
                elif mode == "enqueue":
                    try:
                        st = wal.stat()
                        stamp = (st.st_size, st.st_mtime_ns)
                    except OSError:
                        stamp = None
                    if stamp is not None and stamp != wal_seen:
                        wal_seen = stamp
                        writes += 1
                        fire = writes >= writes_to_wait
                elif mode in ("request", "namespace", "damage"):
                    if hold_kill_at is None and self.fake.arrivals >= arrival_to_wait:
                        hold_kill_at = now + rng.uniform(0.0, self.hold_s * 0.9)
                    fire = hold_kill_at is not None and now >= hold_kill_at
                if sock is not None:
                    rid += 1
                    pos = _ipc_time_pos(sock, buf, rid, timeout=0.05 if fire else 0.2)
                    if pos is not None:
                        last_pos = pos
                if fire:
                    os.killpg(proc.pid, signal.SIGKILL)  # the player, and unshare's child in a namespace
                    killed = True
                    break
                time.sleep(0.001 if mode == "enqueue" else 0.01)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
            if sock is not None:
                sock.close()
            stderr = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
            if proc.stderr:
                proc.stderr.close()
        kill_after = time.monotonic() - start
        notes = []
        if mode == "namespace" and not self.namespaces:
            notes.append("no PID namespace here (needs root and unshare): the player ran in this one")
        if not killed:
            notes.append(f"play ended by itself (exit {proc.returncode})")
            if proc.returncode != 0:
                notes.append(stderr.strip()[-300:])
        # Let the server finish what the dead process left in it, as a real server would.
        if mode != "quit":  # quit: `sync` runs right after, while the server still holds the write
            wait_until = time.monotonic() + self.hold_s + 5
            while self.fake.inflight and time.monotonic() < wait_until:
                time.sleep(0.01)
        self.fake.hold_writes = 0.0
        self.fake.listing_broken = False
        self.fake.listing_free.set()
        acknowledged = read_rows(db)
        if mode == "damage":
            kind = queue_damage.damage(db.parent, rng)
            notes.append(f"damage: {kind or 'no queue file'}")

        t_sync = time.monotonic()
        # 40 s: a send in doubt is judged only after its window (connect + read timeout + 5 s, twice
        # the timeouts for a position): 25 s with the default timeouts.
        done = subprocess.run(self.cli("sync", "--timeout", "40"), env=env, capture_output=True, text=True,
                              timeout=90)
        while self.fake.inflight:  # a write held past the sync lands, as on a real server
            time.sleep(0.01)
        self.sync_seconds = time.monotonic() - t_sync
        if done.returncode != 0:
            notes.append(f"sync exit {done.returncode}: {(done.stdout + done.stderr).strip()[-300:]}")
        final = {r["id"]: r for r in read_rows(db)}
        data = self.fake.user_data(self.uid, item)
        server_pos = data.position_ticks / TICKS_PER_SECOND
        found = queue_damage.report(db.parent) if mode == "damage" else None
        damaged = int(found.get("lost", 0)) if found else 0
        if mode == "damage" and (set(r["id"] for r in acknowledged) - set(final)
                                 or any(r["status"] == "failed" for r in final.values())):
            # Rows were dropped or kept as failed by the salvage: each must be counted by its report.
            lost = queue_damage.unaccounted(acknowledged, final, found)
            queued = sum(1 for r in final.values() if r["status"] in ("pending", "failed"))
            if lost:
                notes.append(f"{lost} row(s) gone that no damage report counts ({found})")
        else:
            lost, queued = lost_and_queued(acknowledged, final, data, notes)
        stranded = sum(1 for r in final.values() if r["status"] == "syncing")
        dup = max(0, self.fake.played_applied[item] - 1)
        error = 0.0 if data.played else max(0.0, last_pos - server_pos)
        unsaved = int(not killed and proc.returncode == 0 and not data.played)
        if unsaved:
            notes.append("clean exit, but the watched mark was never saved")
        if not killed and proc.returncode not in (0, None) and mode in ("slow", "quit", "identify", "stall"):
            lost += 1  # the trial never played: count it, never pass it silently
        dropped = int(mode in ("identify", "stall") and not killed and not data.played
                      and not any(r["status"] in ("pending", "failed") for r in final.values()))
        if dropped:
            notes.append("played to the end while identification could not finish: the watched mark was dropped")
        return TrialResult(n, mode, killed, round(kill_after, 3), round(last_pos, 3), len(acknowledged), lost,
                           stranded, dup, queued, round(error, 3), data.played, round(server_pos, 3), notes,
                           unsaved, dropped, damaged)

    def _replay_trial(self, n: int, tdir: Path, clip: Path, item: str, db: Path, env) -> TrialResult:
        """An older version's journal is imported by a `sync` killed at a random moment; `sync` again."""
        data_dir = tdir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"kind": "tracked", "media": {"path": str(clip), "title": f"Clip {n}", "provider_ids": {},
                                                        "entry_key": "1"},
                           "change_type": "mark_watched", "position_ms": None,
                           "duration_ms": int(self.clip_seconds * 1000), "created_at": time.time() - 30})
        (data_dir / f"unqueued-changes.jsonl.{40000 + n}").write_text(line + "\n", encoding="utf-8")
        start = time.monotonic()
        first = subprocess.Popen(self.cli("sync", "--timeout", "20"), env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
        kill_at = self.rng.uniform(0.0, 2.5)
        killed = False
        while first.poll() is None:
            if time.monotonic() - start >= kill_at:
                os.kill(first.pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.005)
        first.wait(10)
        kill_after = time.monotonic() - start
        acknowledged = read_rows(db)
        notes: List[str] = []
        done = subprocess.run(self.cli("sync", "--timeout", "40"), env=env, capture_output=True, text=True,
                              timeout=90)
        if done.returncode != 0:
            notes.append(f"sync exit {done.returncode}: {(done.stdout + done.stderr).strip()[-300:]}")
        final = {r["id"]: r for r in read_rows(db)}
        data = self.fake.user_data(self.uid, item)
        lost = 0 if data.played else 1
        if lost:
            notes.append("the journal's watched mark did not reach the server")
        if list(data_dir.glob("unqueued-changes.jsonl*")):
            notes.append("the journal file is still there")
        stranded = sum(1 for r in final.values() if r["status"] == "syncing")
        dup = max(0, self.fake.played_applied[item] - 1)
        queued = sum(1 for r in final.values() if r["status"] in ("pending", "failed"))
        return TrialResult(n, "replay", killed, round(kill_after, 3), 0.0, len(acknowledged), lost, stranded, dup,
                           queued, 0.0, data.played, 0.0, notes)

def run_trials(workdir: Path, trials: int, *, seed: Optional[int] = None, clip_seconds: float = 4.0,
               hold_s: float = 1.0, progress=None, modes=KILL_MODES) -> List[TrialResult]:
    rng = random.Random(seed)
    rig = CrashRig(workdir, clip_seconds=clip_seconds, hold_s=hold_s, rng=rng)
    results = []
    try:
        for n in range(trials):
            r = rig.trial(n, modes[n % len(modes)])
            results.append(r)
            if progress is not None:
                progress(r)
        violations = rig.violations()
        if violations:
            raise AssertionError("the fake saw requests its spec rejects:\n  " + "\n  ".join(violations[:5]))
    finally:
        rig.close()
    return results
