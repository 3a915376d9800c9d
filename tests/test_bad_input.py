"""Bad input from the user, end to end: bad settings files through every CLI command
(exit 2 naming the file and the key, no traceback, no secret echoed), and odd media
names (unicode, spaces, very long, newlines, URLs with credentials) through a real
`playback-sync play`, identification, the queue and the logs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from playbacksync.changes import PROGRESS, Change
from playbacksync.queue import SyncQueue
from playbacksync.settings import ConfigError, config_from_flat
from tests.fakes.base import fail_on_spec_violations  # noqa: F401  (autouse)
from tests.fakes.jellyfin import JellyfinFake

ROOT = Path(__file__).resolve().parents[1]
SECRET = "pa55SECRETvalue9z"
TOKEN = "oddNAMEStoken4d2f8a9c"
SERVER = '[[servers]]\nid = "home"\ntype = "jellyfin"\nurl = "http://127.0.0.1:9"\n'

# (config text, key named first, secret that must not be echoed or None)
BAD = [
    ('[[servers]]\nid = "a"\ntype = "jellyfin"\nurl = "htp://bob:%s@media.example"\n' % SECRET, "servers[1].url", SECRET),
    ('[[servers]]\nid = "a"\ntype = "jellyfin"\nurl = "https://bob:%s@media.example:8920"\n' % SECRET,
     "servers[1].url", SECRET),
    ('[[servers]]\nid = "a"\ntype = "jellyfin"\nurl = "https://media.example/?api_key=%s"\n' % SECRET,
     "servers[1].url", SECRET),
    ('[[servers]]\nid = "a"\ntype = "jellyfin"\nurl = "https://bob:%s@media.example:99999"\n' % SECRET,
     "servers[1].url", SECRET),
    (SERVER + 'token = 98765432101234\n', "servers[1].token", "98765432101234"),
    (SERVER + 'tokn = "%s"\n' % SECRET, "servers[1].tokn", SECRET),
    ('[[servers]]\nid = "mön sérvér ☃"\ntype = "jellyfin"\nurl = "http://h"\n', "servers[1].id", None),
    ('[[servers]]\nid = "a"\ntype = "jellyfin"\nurl = "http://h"\npath_mappings = [{ local = "/a\\nb", remote = 3 }]\n',
     "servers[1].path_mappings[1].remote", None),
    ("[sync]\nprogress_interval = 1\n", "sync.progress_interval", None),
    ("[sync]\nwatched_percent = -5\n", "sync.watched_percent", None),
    ('[sync]\nnotifications = "loud"\n', "sync.notifications", None),
    ('[[servers]]\nid = "a"\ntoken = "%s\n' % SECRET, "", SECRET),  # broken TOML on the token's line
]


@pytest.fixture
def env(tmp_path, monkeypatch):
    for var in ("XDG_STATE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    monkeypatch.setenv("PLAYBACK_SYNC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("PLAYBACK_SYNC_CONFIG", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    return tmp_path


def run_cli(*args, config_env=None, timeout=60):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if config_env:
        env["PLAYBACK_SYNC_CONFIG"] = config_env
    return subprocess.run([sys.executable, "-m", "playbacksync.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def all_logs(root: Path) -> str:
    return "".join(p.read_text("utf-8", "replace") for p in root.rglob("*.log*") if p.is_file())


@pytest.mark.parametrize("text,key,secret", BAD, ids=[f"{i}-{b[1] or 'syntax'}" for i, b in enumerate(BAD)])
def test_bad_settings_exit_2_naming_file_and_key_without_echoing_secrets(env, text, key, secret):
    path = env / "my config ☃.toml"
    path.write_text(text, encoding="utf-8")
    commands = [("status",), ("sync", "--timeout", "1"), ("identify", "/m/x.mkv"), ("retry", "--no-sync"),
                ("play", "/m/x.mkv", "--vo=null")]
    for i, cmd in enumerate(commands):
        # both ways of naming the file: --config and $PLAYBACK_SYNC_CONFIG
        done = run_cli(*cmd, config_env=str(path)) if i % 2 else run_cli("--config", str(path), *cmd)
        assert done.returncode == 2, (cmd, done.returncode, done.stdout, done.stderr)
        assert str(path) in done.stderr, (cmd, done.stderr)
        if key:
            assert f"{key}: " in done.stderr, (cmd, done.stderr)
        assert "Traceback" not in done.stderr and " — " in done.stderr  # a fix follows the problem
        if secret:
            assert secret not in done.stderr + done.stdout, (cmd, done.stderr)
    if secret:
        assert secret not in all_logs(env)


def test_unreadable_settings_files(env):
    folder = env / "a folder.toml"
    folder.mkdir()
    latin = env / "latin1.toml"
    latin.write_bytes(b'[[servers]]\nid = "caf\xe9"\n')
    for path, words in ((folder, "folder"), (latin, "UTF-8"), (env / "missing.toml", "not found")):
        done = run_cli("--config", str(path), "status")
        assert done.returncode == 2 and str(path) in done.stderr and words in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


@pytest.mark.parametrize("flat,key", [
    ({"jellyfin_enabled": True, "jellyfin_url": "ftp://bob:%s@h" % SECRET}, "jellyfin_url"),
    ({"jellyfin_enabled": True, "jellyfin_url": "http://h", "progress_interval": 0}, "progress_interval"),
    ({"plex_enabled": True, "plex_url": "http://h", "watched_percent": "many"}, "watched_percent"),
])
def test_kodi_flat_settings_name_the_setting(flat, key):
    with pytest.raises(ConfigError) as info:
        config_from_flat(flat)
    assert key in str(info.value) and SECRET not in str(info.value), str(info.value)


def test_queue_refuses_malformed_changes_clearly_and_stores_odd_ids(tmp_path):
    q = SyncQueue(str(tmp_path))
    try:
        for bad, words in ((Change("", "s", "u", PROGRESS, position_ms=1), "media_item_id"),
                           (Change("i", "s", "u", PROGRESS, position_ms=-1), "position_ms"),
                           (Change("i", "s", "u", PROGRESS), "position_ms")):
            with pytest.raises(ValueError, match=words):
                q.enqueue_change(bad)
        assert q.counts() == {}
        odd = ["ünï 日本 🎬", "a b\nc\td", "x" * 5000, "'; DROP TABLE playback_sync_queue; --", "%s?#&="]
        ids = [q.enqueue_change(Change(o, "srv ☃", o[:50], PROGRESS, position_ms=i, created_at=1.0 + i))
               for i, o in enumerate(odd)]
        got = {r.id: (r.media_item_id, r.user_id) for r in q.get_pending()}
        assert got == {i: (o, o[:50]) for i, o in zip(ids, odd)}
    finally:
        q.close()


# -- odd media names through a real play --------------------------------------------------

ODD_NAMES = [
    "Ünïcödé 日本語 ☃ 🎬.mp4",
    "spaces  and  'quotes' & (brackets) [1080p] #1 ?.mp4",
    "new\nline\tand tab.mp4",
    ("very long " + "ä" * 55 + " ") * 2 + ".mp4",  # 246 bytes: near the 255-byte file-name limit
]


@pytest.fixture(scope="module")
def base_clip(tmp_path_factory):
    pytest.importorskip("mpv")
    from tests.media import make_clip

    return make_clip(tmp_path_factory.mktemp("clip"), 1.5, name="base")


@pytest.mark.mpv
@pytest.mark.slow
def test_odd_file_names_play_identify_queue_and_log_cleanly(env, base_clip):
    deep = env / ("deep folder ☃ " * 8).strip()  # a long path (~1 KB with the names)
    for i in range(6):
        deep = deep / f"level {i} ß"
    deep.mkdir(parents=True)
    files = []
    for name in ODD_NAMES:
        p = deep / name
        os.link(base_clip, p)
        files.append(p)
    with JellyfinFake() as fake:
        uid = fake.add_user("alice", "pw")
        fake.issue_token(uid, TOKEN)
        items = [fake.add_item(f"Odd {i}", path=str(p), runtime_s=1.5) for i, p in enumerate(files)]
        cfg = env / "config.toml"
        cfg.write_text(f'[[servers]]\nid = "home"\ntype = "jellyfin"\nurl = "{fake.url}"\ntoken = "{TOKEN}"\n'
                       f'user_id = "{uid}"\n', encoding="utf-8")
        done = run_cli("--config", str(cfg), "play", *map(str, files), "--vo=null", "--ao=null", timeout=90)
        assert done.returncode == 0, done.stderr
        # The service may still be sending when play returns (it stops within its budget);
        # `sync` sends whatever is left.
        run_cli("--config", str(cfg), "sync", "--timeout", "15")
        for p, item in zip(files, items):
            d = fake.user_data(uid, item)
            assert d.played and d.play_count == 1, (p.name, d)
        done = run_cli("--config", str(cfg), "identify", "--json", *map(str, files))
        assert done.returncode == 0, done.stderr
        found = json.loads(done.stdout)
        assert [found[str(p)]["home"]["item_id"] for p in files] == items
        done = run_cli("--config", str(cfg), "status")
        assert done.returncode == 0 and TOKEN not in done.stdout + done.stderr
        q = SyncQueue(str(env / "data"))
        try:
            rows = q.rows()
        finally:
            q.close()
        assert {r.media_item_id for r in rows} >= set(items) and all(r.status == "synced" for r in rows)
    assert TOKEN not in all_logs(env)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


@pytest.mark.mpv
@pytest.mark.slow
def test_url_with_credentials_is_played_but_never_printed_or_logged(env, base_clip):
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(base_clip.parent)))
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://viewer:{SECRET}@127.0.0.1:{server.server_port}/{base_clip.name}?api_key={TOKEN}&x=1"
        with JellyfinFake() as fake:
            uid = fake.add_user("alice", "pw")
            fake.issue_token(uid, TOKEN)
            cfg = env / "config.toml"
            cfg.write_text(f'[[servers]]\nid = "home"\ntype = "jellyfin"\nurl = "{fake.url}"\n'
                           f'token = "{TOKEN}"\nuser_id = "{uid}"\n', encoding="utf-8")
            done = run_cli("-v", "--config", str(cfg), "play", url, "--vo=null", "--ao=null", timeout=90)
            out = done.stdout + done.stderr
            assert done.returncode == 0, out
            ident = run_cli("-v", "--config", str(cfg), "identify", url)
            out += ident.stdout + ident.stderr
            assert ident.returncode == 1  # not a stream of this server: no match, said clearly
            assert "home" in ident.stdout
        logs = all_logs(env)
        assert "127.0.0.1" in logs  # the URL was logged, without what follows
        for secret in (SECRET, TOKEN):
            assert secret not in out, out
            assert secret not in logs
    finally:
        server.shutdown()
        server.server_close()
