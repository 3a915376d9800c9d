"""The mpv side's config file: validation messages, atomic private saves, the README example."""
import os
import stat
import threading

import pytest

from playbacksync.config import Config, PathMapping, ServerConfig, SyncOptions
from playbacksync.settings import (ConfigError, default_config_path, load_config, mask_token,
                                   save_config)

HERE = os.path.dirname(__file__)
EXAMPLE = os.path.join(HERE, "data", "config-example.toml")

GOOD_SERVER = '[[servers]]\nid = "home"\ntype = "jellyfin"\nurl = "https://jf.example:8920"\n'

# (file text, key the first problem names, words the message must contain)
BAD_FILES = [
    ('[[servers]]\nid = "a"\ntype = "jellyfin"\nurl = "htp://x"\n', "servers[1].url",
     ["'htp://x' is not an http(s) URL", "https://host:port"]),
    ('[[servers]]\nid = "a"\ntype = "jellyfin"\nurl = "https://u:pw@h"\n', "servers[1].url",
     ["user name or password", "playback-sync login"]),
    ('[[servers]]\nid = "a"\ntype = "jellyfin"\nurl = "http://h:99999"\n', "servers[1].url", ["invalid port"]),
    ('[[servers]]\nid = "a"\ntype = "jelyfin"\nurl = "http://h"\n', "servers[1].type",
     ["'jelyfin' is not a server type", '"plex", "jellyfin" or "emby"']),
    ('[[servers]]\ntype = "plex"\nurl = "http://h"\n', "servers[1].id", ["missing", 'id = "home"']),
    ('[[servers]]\nid = "a"\ntype = "plex"\n', "servers[1].url", ["missing", "https://host:port"]),
    ('[[servers]]\nid = "has space"\ntype = "plex"\nurl = "http://h"\n', "servers[1].id",
     ["not a usable name", "letters, digits"]),
    (GOOD_SERVER + 'enabled = "yes"\n', "servers[1].enabled", ["not true/false", "enabled = true"]),
    (GOOD_SERVER + "token = 1234\n", "servers[1].token", ["a number, not text", "quotes"]),
    (GOOD_SERVER + 'verfy_tls = false\n', "servers[1].verfy_tls", ["unknown setting", 'did you mean "verify_tls"']),
    (GOOD_SERVER + 'ca_bundle = "/nonexistent/ca.pem"\n', "servers[1].ca_bundle",
     ["'/nonexistent/ca.pem' not found", "PEM"]),
    (GOOD_SERVER + 'path_mappings = "/a=>/b"\n', "servers[1].path_mappings", ["not a list", "local ="]),
    (GOOD_SERVER + 'path_mappings = [{ local = "/a" }]\n', "servers[1].path_mappings[1].remote",
     ["missing or empty"]),
    (GOOD_SERVER + 'path_mappings = [{ local = "/a", remote = "/b", remot = "/c" }]\n',
     "servers[1].path_mappings[1].remot", ["unknown setting"]),
    (GOOD_SERVER + "read_timeout = 0\n", "servers[1].read_timeout", ["out of range", "from 1 to 300"]),
    ('[[servers]]\nid = "p"\ntype = "plex"\nurl = "http://h"\nuser_id = "u1"\n', "servers[1].user_id",
     ["Plex servers have no user id", "remove user_id"]),
    (GOOD_SERVER + GOOD_SERVER, "servers[2].id", ["already the id of servers[1]", "its own id"]),
    ("[sync]\nwatched_percent = 120\n", "sync.watched_percent", ["120 is out of range", "from 50 to 100"]),
    ("[sync]\nprogress_interval = \"10\"\n", "sync.progress_interval", ["not a number", "without quotes"]),
    ("[sync]\nnotifications = \"some\"\n", "sync.notifications", ["'some' is not one of", "'errors'"]),
    ("[sync]\nnotification = \"all\"\n", "sync.notification", ['did you mean "notifications"']),
    ("server = 1\n", "server", ['did you mean "servers"']),
    ("servers = 3\n", "servers", ["not a list of tables", "[[servers]]"]),
    ("sync = 3\n", "sync", ["not a table", "[sync]"]),
    ('[[servers]]\nid = "a"\nurl = https://x\n', "", ["not valid TOML", "line 3", "quotes"]),
]


@pytest.mark.parametrize("text,key,words", BAD_FILES, ids=[b[1] or "syntax" for b in BAD_FILES])
def test_bad_file_names_file_key_and_fix(tmp_path, text, key, words):
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    err = info.value
    assert err.file == str(path)
    assert err.key == key
    msg = str(err)
    assert msg.startswith(f"{path}: ")
    if key:
        assert f"{key}: " in msg
    for w in words:
        assert w in msg, msg
    assert " — " in msg  # the fix follows the problem


def test_all_problems_reported_at_once(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[sync]\nwatched_percent = 10\n[[servers]]\nid = "a"\ntype = "x"\nurl = "ftp://h"\n')
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    keys = {p.key for p in info.value.problems}
    assert keys == {"sync.watched_percent", "servers[1].type", "servers[1].url"}
    assert "3 problems" in str(info.value)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path / "nope.toml"))
    assert "file not found" in str(info.value) and "playback-sync settings" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path))
    assert "is a folder" in str(info.value)
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'[[servers]]\nid = "caf\xe9"\n')
    with pytest.raises(ConfigError) as info:
        load_config(str(bad))
    assert str(bad) in str(info.value)


def test_readme_example_loads():
    config = load_config(EXAMPLE)
    assert [(s.id, s.type, s.enabled) for s in config.servers] == [
        ("home-jellyfin", "jellyfin", True), ("plex", "plex", True), ("emby", "emby", False)]
    jf = config.server("home-jellyfin")
    assert jf.path_mappings == (PathMapping("/mnt/media", "/data/media"), PathMapping("/home/alice/Videos", "/srv/videos"))
    assert config.sync == SyncOptions(progress_interval=10, watched_percent=90, notifications="errors",
                                      retention_days=7)


def test_readme_shows_the_same_example():
    readme = os.path.join(HERE, os.pardir, "README.md")
    text = open(readme, encoding="utf-8").read() if os.path.exists(readme) else ""
    if "# Playback Sync: config.toml" not in text:
        pytest.skip("README has no config example yet")
    block = text.split("```toml\n# Playback Sync: config.toml", 1)[1].split("```", 1)[0]
    assert "# Playback Sync: config.toml" + block == open(EXAMPLE, encoding="utf-8").read()


def _sample(tmp_path) -> Config:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    return Config(servers=(
        ServerConfig(id="jf", type="jellyfin", url="https://jf.example:8920", token="tok-0123456789abcdef",
                     user_id="u1", username="alice", ca_bundle=str(ca),
                     path_mappings=(PathMapping("/mnt/m", "/data/m"), PathMapping("/ü ni/c", "/srv/ü"))),
        ServerConfig(id="px", type="plex", url="http://plex.lan:32400", token="plexTOKEN", enabled=False,
                     verify_tls=False, device_id="dev-1", read_timeout=30.0),
    ), sync=SyncOptions(progress_interval=15, watched_percent=85, notifications="all", retention_days=3))


def test_save_then_load_round_trips_private_file(tmp_path):
    config = _sample(tmp_path)
    path = tmp_path / "sub" / "config.toml"
    save_config(config, str(path))
    assert load_config(str(path)) == config
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["config.toml"]  # no temp file left


def test_save_replaces_atomically(tmp_path, monkeypatch):
    """A failure while writing leaves the old file whole, and readers never see a partial file."""
    path = tmp_path / "config.toml"
    old = _sample(tmp_path)
    save_config(old, str(path))
    before = path.read_bytes()
    import playbacksync.settings.config_file as cf

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(cf.os, "fsync", boom)
    with pytest.raises(OSError):
        save_config(Config(), str(path))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []

    # Concurrent readers during many saves see either the old or the new config, never a torn one.
    new = Config(servers=old.servers[:1], sync=old.sync)
    seen, stop = set(), threading.Event()

    def reader():
        while not stop.is_set():
            seen.add(len(load_config(str(path)).servers))

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(40):
            save_config(new if i % 2 else old, str(path))
    finally:
        stop.set()
        t.join()
    assert seen <= {1, 2} and seen


def test_loose_permissions_are_tightened_when_tokens_are_stored(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(GOOD_SERVER + 'token = "secret-token-123456"\n')
    os.chmod(path, 0o644)
    load_config(str(path))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_default_path_and_env_override(tmp_path, monkeypatch):
    monkeypatch.delenv("PLAYBACK_SYNC_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert default_config_path() == str(tmp_path / "xdg" / "playback-sync" / "config.toml")
    monkeypatch.setenv("PLAYBACK_SYNC_CONFIG", str(tmp_path / "other.toml"))
    assert default_config_path() == str(tmp_path / "other.toml")


def test_loaded_tokens_are_redacted(tmp_path):
    from playbacksync.backends.http import redact

    path = tmp_path / "config.toml"
    path.write_text(GOOD_SERVER + 'token = "zz-distinctive-token-42"\n')
    load_config(str(path))
    assert "zz-distinctive-token-42" not in redact("error for zz-distinctive-token-42 at /x")


def test_mask_token_never_shows_the_token():
    assert mask_token("abcdef0123456789") == "abcd…"
    assert mask_token("short") == "…"
    assert mask_token("") == "(none)"
