"""`playback-sync play` with real mpv on generated media, at the edges: a file name that is not
valid UTF-8, and a data folder that cannot hold the queue."""
from __future__ import annotations

import os
import sqlite3

import pytest

pytest.importorskip("mpv")

from playbacksync.config import Config, PathMapping, ServerConfig  # noqa: E402
from playbacksync.fsnames import from_sqlite, lossless, shown, to_sqlite  # noqa: E402
from playbacksync.settings import save_config  # noqa: E402
from tests.fakes.base import fail_on_spec_violations  # noqa: F401,E402
from tests.fakes.jellyfin import JellyfinFake  # noqa: E402
from tests.faults.cli import command, environment  # noqa: E402
from tests.faults.storage import remount, tmpfs  # noqa: E402
from tests.media import make_clip  # noqa: E402

pytestmark = pytest.mark.mpv

REMOTE = "/srv/media"
NAME = b"caf\xe9 \xff.mp4"           # Latin-1 bytes: not UTF-8


@pytest.fixture
def setup(tmp_path):
    clips = tmp_path / "clips"
    clip = make_clip(clips, 3, name="clip")
    odd = os.path.join(os.fsencode(clips), NAME)
    os.rename(clip, odd)
    with JellyfinFake(version="10.10.7") as fake:
        uid = fake.add_user("alice", "pass")
        server = ServerConfig(id="home", type="jellyfin", url=fake.url, token=fake.issue_token(uid), user_id=uid,
                              path_mappings=(PathMapping(str(clips), REMOTE),), connect_timeout=1.0,
                              read_timeout=2.0)
        item = fake.add_item("Café", path=f"{REMOTE}/{os.fsdecode(NAME)}", runtime_s=3.0)
        config = tmp_path / "config.toml"
        save_config(Config(servers=(server,)), str(config))
        (tmp_path / "mpv").mkdir()
        yield {"fake": fake, "uid": uid, "item": item, "clip": odd, "config": str(config),
               "env": environment(tmp_path, PLAYBACK_SYNC_MPV_CONFIG_DIR=tmp_path / "mpv")}


def run(setup, *args, data, timeout=90):
    import subprocess

    argv = [*command(), "--config", setup["config"], "--data-dir", str(data), *args]
    return subprocess.run(argv, env=setup["env"], capture_output=True, timeout=timeout)


def test_a_file_name_that_is_not_utf8_plays_and_syncs(setup, tmp_path):
    data = tmp_path / "data"
    done = run(setup, "play", setup["clip"], "--vo=null", "--ao=null", "--speed=100", data=data)
    err = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 0 and "Traceback" not in err, err
    fake = setup["fake"]
    for _ in range(6):               # the queue keeps what the player had no time to send
        if fake.user_data(setup["uid"], setup["item"]).played:
            break
        run(setup, "sync", "--timeout", "5", data=data)
    assert fake.user_data(setup["uid"], setup["item"]).played
    logs = b"".join(p.read_bytes() for p in tmp_path.rglob("*.log"))
    assert "caf\ufffd \ufffd.mp4".encode() in logs                    # logged, shown safely


def test_play_on_a_read_only_data_folder_exits_non_zero_with_the_reason(setup, tmp_path):
    with tmpfs(tmp_path / "ro", 256) as disk:
        remount(disk, "ro")
        done = run(setup, "play", setup["clip"], "--vo=null", "--ao=null", "--speed=100", data=disk)
    err = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 3, (done.returncode, err)
    assert "read-only file system" in err and "Traceback" not in err, err


def test_odd_names_are_kept_losslessly_in_sqlite_and_shown_safely(tmp_path):
    name = lossless(os.path.join(os.fsencode(tmp_path), NAME))
    con = sqlite3.connect(tmp_path / "t.sqlite")
    con.execute("CREATE TABLE t (path TEXT)")
    con.execute("INSERT INTO t VALUES (?)", (to_sqlite(name),))
    con.execute("INSERT INTO t VALUES (?)", (to_sqlite("plain é"),))
    back = [from_sqlite(r[0]) for r in con.execute("SELECT path FROM t")]
    assert back == [name, "plain é"] and os.fsencode(back[0]).endswith(NAME)
    assert shown(name).endswith("caf\ufffd \ufffd.mp4") and shown(name).encode("utf-8")
