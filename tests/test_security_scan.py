"""Security scan: a full scenario with distinctive tokens, then every place text goes.

Scenario (real processes, real HTTP to the spec-validating fakes): `playback-sync play`
of a real clip known to Jellyfin, Plex and Emby, plus a Jellyfin that refuses the token
and a server that is down; the Emby fake's errors echo the token back (some servers
echo request headers); then status (text, --json, -v), retry, identify, sync. In
process, the sync service's events and the OSD texts made from them.

Searched for every token: CLI stdout/stderr, every file the plugin wrote (logs, queue,
item index, WAL files — bytes), every queue row's error message, every service event
and OSD text. 0 hits. Files holding data are 0600 and folders 0700.
TLS: a server with a certificate from a CA made here is refused (clear, redacted) unless
the CA is configured as ca_bundle; nothing queued is lost meanwhile.
"""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from playbacksync.app import SyncService
from playbacksync.settings import load_config
from playbacksync.tracker.events import ENDED, POSITION, STARTED, MediaRef, PlaybackEvent
from tests.fakes.base import fail_on_spec_violations  # noqa: F401  (autouse)
from tests.fakes.emby import EmbyFake
from tests.fakes.jellyfin import JellyfinFake
from tests.fakes.plex import PlexHarness

ROOT = Path(__file__).resolve().parents[1]
TOKENS = {
    "jf": "JFsecTOKENa1b2c3d4e5f6",
    "plex": "PLXsecTOKENz9y8x7w6v5",
    "emby": "EMBsecTOKENq1w2e3r4t5",
    "refused": "REFsecTOKENm1n2b3v4c5",
    "down": "DWNsecTOKENp0o9i8u7y6",
}


class EchoingEmby(EmbyFake):
    """Emby whose next write requests fail with the caller's token in the error body
    (some servers echo request headers back in their errors)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.write_failures = []  # statuses for the next writes

    def _respond(self, req, body, environ):
        if req.method in ("POST", "DELETE") and self.write_failures:
            from werkzeug.wrappers import Response

            status = self.write_failures.pop(0)
            token = req.headers.get("X-Emby-Token") or req.headers.get("Authorization", "")
            return Response(f'{{"message": "request with token {token} failed"}}', status=status,
                            content_type="application/json")
        return super()._respond(req, body, environ)


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Scene:
    """The fakes and a config naming them all (tokens written as a user would have them)."""

    def __init__(self, root: Path, clip: Path):
        self.root = root
        self.clip = clip
        self.jf = JellyfinFake().start()
        self.jf_uid = self.jf.add_user("alice", "pw")
        self.jf.issue_token(self.jf_uid, TOKENS["jf"])
        self.jf_item = self.jf.add_item("Clip", path=str(clip), runtime_s=2.0)
        self.refused = JellyfinFake(server_name="Refuses").start()  # the token was revoked there
        self.refused_uid = self.refused.add_user("alice", "pw")
        self.refused.add_item("Clip", path=str(clip), runtime_s=2.0)
        self.emby = EchoingEmby().start()
        self.emby_uid = self.emby.add_user("alice", "pw")
        self.emby.issue_token(self.emby_uid, TOKENS["emby"])
        self.emby_item = self.emby.add_item("Clip", path=str(clip), runtime_s=2.0)
        self.plex = PlexHarness(token=TOKENS["plex"]).start()
        self.plex_item = self.plex.add_item("Clip", str(clip), runtime_s=2.0)
        self.config = root / "config" / "config.toml"
        self.config.parent.mkdir(parents=True)
        servers = [("jf", "jellyfin", self.jf.url, self.jf_uid), ("plex", "plex", self.plex.fake.url, ""),
                   ("emby", "emby", self.emby.url, self.emby_uid),
                   ("refused", "jellyfin", self.refused.url, self.refused_uid),
                   ("down", "jellyfin", f"http://127.0.0.1:{free_port()}", "u1")]
        text = "[sync]\nprogress_interval = 2\nnotifications = \"all\"\n"
        for sid, kind, url, uid in servers:
            text += (f'\n[[servers]]\nid = "{sid}"\ntype = "{kind}"\nurl = "{url}"\ntoken = "{TOKENS[sid]}"\n'
                     f"connect_timeout = 0.5\nread_timeout = 2\n")
            if uid:
                text += f'user_id = "{uid}"\n'
        self.config.write_text(text, encoding="utf-8")
        os.chmod(self.config, 0o644)  # as an editor might leave it; loading makes it private
        self.outputs = []

    def stop(self):
        for f in (self.jf, self.refused, self.emby):
            f.stop(check=False)
        self.plex.fake.stop(check=False)

    def env(self):
        env = dict(os.environ, PYTHONPATH=str(ROOT), PLAYBACK_SYNC_CONFIG=str(self.config),
                   PLAYBACK_SYNC_DATA_DIR=str(self.root / "data"), XDG_STATE_HOME=str(self.root / "state"),
                   XDG_CONFIG_HOME=str(self.root / "xdg-config"), XDG_DATA_HOME=str(self.root / "xdg-data"),
                   XDG_CACHE_HOME=str(self.root / "cache"),
                   PLAYBACK_SYNC_MPV_CONFIG_DIR=str(self.root / "mpv-config"))
        env.pop("DISPLAY", None)
        return env

    def cli(self, *args, timeout=90):
        done = subprocess.run([sys.executable, "-m", "playbacksync.cli", *args], capture_output=True, text=True,
                              env=self.env(), timeout=timeout)
        self.outputs.append((args, done.returncode, done.stdout, done.stderr))
        return done


def find_tokens(text: str):
    return [sid for sid, t in TOKENS.items() if t in text]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    pytest.importorskip("mpv")
    from tests.media import make_clip

    return make_clip(tmp_path_factory.mktemp("clip"), 2.0, name="secure clip")


@pytest.mark.mpv
@pytest.mark.slow
def test_no_token_anywhere_after_a_full_scenario(tmp_path, clip, monkeypatch):
    (tmp_path / "mpv-config").mkdir()
    scene = Scene(tmp_path, clip)
    try:
        # The Emby server echoes the token in its error bodies (as some servers echo headers).
        scene.emby.write_failures = [500, 500]
        play = scene.cli("play", str(clip), "--vo=null", "--ao=null")
        assert play.returncode == 0, play.stderr
        status = scene.cli("status")
        assert status.returncode == 1  # a server refused, one is down: needs the user
        js = json.loads(scene.cli("status", "--json").stdout)
        assert js["servers"]["refused"]["state"] == "auth_required" and js["servers"]["down"]["state"] == "offline"
        assert js["servers"]["jf"]["state"] == "online"
        scene.cli("-v", "status")
        scene.cli("retry", "--timeout", "5")
        scene.cli("identify", str(clip))
        scene.cli("identify", "--json", str(clip))
        scene.cli("-v", "sync", "--timeout", "5")
        # The changes reached the servers that work (so the scenario really ran).
        assert scene.jf.user_data(scene.jf_uid, scene.jf_item).played
        assert scene.plex.state(scene.plex_item).played
        assert scene.emby.user_data(scene.emby_uid, scene.emby_item).played, scene.outputs

        # In process: the service's events and the OSD texts the hosts would show.
        for var, value in scene.env().items():
            if var.startswith(("PLAYBACK_SYNC", "XDG_")):
                monkeypatch.setenv(var, value)
        from playbacksync.hosts.mpv import OsdPolicy

        config = load_config(str(scene.config))
        service = SyncService(config, str(tmp_path / "data"), worker_options={"poll_interval": 0.1})
        events, lock = [], threading.Lock()

        def on_event(e):
            with lock:
                events.append(e)
        service.subscribe(on_event)
        service.start()
        service.wait_ready(10)
        media = MediaRef(path=str(clip), title=clip.name)
        scene.emby.write_failures = [400]  # refused for good (a 404 now means "identify it again")
        service.handle(PlaybackEvent(STARTED, media=media, position=0.0, duration=2.0, at=1.0))
        service.handle(PlaybackEvent(POSITION, media=media, position=1.0, duration=2.0, at=4.0))
        service.handle(PlaybackEvent(ENDED, media=media, position=1.2, duration=2.0, reason="quit", at=4.5))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with lock:
                kinds = {(e.kind, e.source_id) for e in events}
            if {("auth_required", "refused"), ("offline", "down"), ("failed", "emby")} <= kinds:
                break
            time.sleep(0.1)
        service.stop(3.0)
        with lock:
            kinds = {(e.kind, e.source_id) for e in events}
        assert {("auth_required", "refused"), ("offline", "down"), ("failed", "emby")} <= kinds, kinds
        texts = []
        for notifications in ("all", "errors"):
            osd = OsdPolicy(notifications)
            for e in events:
                texts.append(e.message)
                texts.append(osd.text_for(e) or "")
        hits = [t for t in texts if find_tokens(t)]
        assert not hits, hits

        # CLI output
        for args, code, out, err in scene.outputs:
            assert not find_tokens(out + err), (args, out, err)
        # Every file the plugin wrote, as bytes (queue, index, WAL, logs, rotated logs).
        written = [p for p in tmp_path.rglob("*") if p.is_file() and p != scene.config
                   and "mpv-config" not in p.parts]
        assert any(p.name.endswith(".log") for p in written) and any(p.name == "queue.sqlite" for p in written)
        for p in written:
            data = p.read_bytes()
            leaked = [sid for sid, t in TOKENS.items() if t.encode() in data]
            assert not leaked, f"{p} holds the token of {leaked}"
        # Every queue row's error message (the echoed-token ones are there).
        con = sqlite3.connect(str(tmp_path / "data" / "queue.sqlite"))
        messages = [r[0] or "" for r in con.execute("SELECT error_message FROM playback_sync_queue")]
        con.close()
        assert any("request with token" in m for m in messages), messages  # the echoing server's words
        assert not [m for m in messages if find_tokens(m)]

        # Permissions: private files and folders.
        assert stat.S_IMODE(scene.config.stat().st_mode) == 0o600
        for folder in (tmp_path / "data", tmp_path / "state" / "playback-sync"):
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
        for p in written:
            if p.parent in (tmp_path / "data", tmp_path / "state" / "playback-sync"):
                assert stat.S_IMODE(p.stat().st_mode) == 0o600, (p, oct(p.stat().st_mode))
    finally:
        scene.stop()


# -- TLS -------------------------------------------------------------------------------------

def make_ca_and_cert(folder: Path):
    """A CA and a server certificate it signed for 127.0.0.1 (openssl CLI)."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=Playback Sync Test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1")
    (folder / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                                    "extendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    return folder / "ca.pem", folder / "server.pem", folder / "server.key"


def test_tls_is_verified_by_default_and_a_configured_ca_is_trusted(tmp_path, monkeypatch):
    certs = tmp_path / "certs"
    certs.mkdir()
    ca, cert, key = make_ca_and_cert(certs)
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(var, raising=False)
    token = "TLSsecTOKENh4j5k6l7"
    with JellyfinFake(tls=(str(cert), str(key))) as fake:
        assert fake.url.startswith("https://")
        uid = fake.add_user("alice", "pw")
        fake.issue_token(uid, token)
        item = fake.add_item("Clip", path="/m/clip.mkv", runtime_s=600)
        base = (f'[[servers]]\nid = "tls"\ntype = "jellyfin"\nurl = "{fake.url}"\ntoken = "{token}"\n'
                f'user_id = "{uid}"\nconnect_timeout = 1\nread_timeout = 3\n')
        env = dict(os.environ, PYTHONPATH=str(ROOT), PLAYBACK_SYNC_DATA_DIR=str(tmp_path / "data"),
                   XDG_STATE_HOME=str(tmp_path / "state"))

        def cli(cfg_text, *args):
            cfg = tmp_path / "config.toml"
            cfg.write_text(cfg_text, encoding="utf-8")
            return subprocess.run([sys.executable, "-m", "playbacksync.cli", "--config", str(cfg), *args],
                                  capture_output=True, text=True, env=env, timeout=60)

        from playbacksync.changes import WATCHED, Change
        from playbacksync.queue import SyncQueue

        q = SyncQueue(str(tmp_path / "data"))
        rid = q.enqueue_change(Change(item, "tls", uid, WATCHED, completed=True, created_at=time.time()))
        q.close()
        # Not trusted by default: refused with a clear, redacted message; the change waits.
        done = cli(base, "status", "--json")
        entry = json.loads(done.stdout)["servers"]["tls"]
        assert done.returncode == 1 and entry["state"] == "offline", done.stdout
        assert "TLS" in entry["error"] or "certificate" in entry["error"].lower(), entry["error"]
        done2 = cli(base, "sync", "--timeout", "3")
        assert done2.returncode == 1 and "1 pending" in done2.stdout, done2.stdout
        for d in (done, done2):
            assert token not in d.stdout + d.stderr
        logs = "".join(p.read_text() for p in (tmp_path / "state").rglob("*.log"))
        assert token not in logs
        assert not fake.requests, "a request got through an untrusted TLS connection"
        assert not fake.user_data(uid, item).played
        # The CA in ca_bundle: trusted, and the queued change goes out.
        done = cli(base + f'ca_bundle = "{ca}"\n', "sync", "--timeout", "10")
        assert done.returncode == 0, done.stdout + done.stderr
        assert fake.user_data(uid, item).played
        q = SyncQueue(str(tmp_path / "data"))
        try:
            assert q.get(rid).status == "synced"
        finally:
            q.close()


def test_log_files_stay_private_across_rollovers(tmp_path, monkeypatch):
    import logging

    from playbacksync import cli

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    path = Path(cli.setup_logging(False))
    root = logging.getLogger()
    try:
        log = logging.getLogger("playbacksync.test")
        for _ in range(25_000):  # > 2 rollovers of the 1 MB log
            log.info("x" * 100)
    finally:
        for h in [h for h in root.handlers if getattr(h, "_playback_sync", False)]:
            root.removeHandler(h)
            h.close()
    files = sorted(path.parent.iterdir())
    assert len(files) >= 3, files
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, (p, oct(p.stat().st_mode))
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
