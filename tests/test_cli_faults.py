"""Each storage or settings fault through the real ``playback-sync`` command: a clear message on
stderr, the documented exit code (0 ok, 1 attention, 2 settings, 3 storage), no traceback, and
nothing lost."""
from __future__ import annotations

import hashlib
import os
import sqlite3

import pytest

from playbacksync.changes import Change
from playbacksync.queue import SyncQueue
from playbacksync.settings import ConfigError
from playbacksync.settings.kodi_settings import config_from_flat
from tests.fakes.base import fail_on_spec_violations  # noqa: F401  (autouse)
from tests.faults.servers import jellyfin_with_clip
from tests.faults.cli import playback_sync
from tests.faults.storage import fill, remount, tmpfs

TOKEN = "faults-token-3e9d1f27aa"
EXIT_OK, EXIT_ATTENTION, EXIT_USAGE, EXIT_STORAGE = 0, 1, 2, 3


@pytest.fixture
def jellyfin():
    with jellyfin_with_clip(TOKEN) as fake:
        yield fake


def write_config(path, fake=None, extra="", sync=""):
    server = (f'[[servers]]\nid = "home"\ntype = "jellyfin"\nurl = "{fake.url}"\ntoken = "{TOKEN}"\n'
              f'user_id = "{fake.uid}"\npath_mappings = [{{ local = "/mnt/media", remote = "/srv/media" }}]\n'
              if fake else "")
    path.write_text((f"[sync]\n{sync}\n" if sync else "") + server + extra)
    return path


def assert_clean_failure(done, code, *words):
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    for word in words:
        assert word in done.stderr, done.stderr


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


# -- a queue file from a newer version ----------------------------------------------------------

def test_queue_from_a_newer_schema_is_left_untouched_with_a_clear_message(tmp_path, jellyfin):
    data = tmp_path / "data"
    q = SyncQueue(str(data))
    q.enqueue_change(Change(jellyfin.iid, "home", jellyfin.uid, "mark_watched"))
    q.close()
    con = sqlite3.connect(data / "queue.sqlite")
    con.execute("UPDATE alembic_version SET version_num = '0099'")   # what a later release would write
    con.commit()
    con.close()
    before = digest(data / "queue.sqlite")
    cfg = write_config(tmp_path / "c.toml", jellyfin)
    for args in (("status", "--no-check"), ("sync", "--timeout", "5")):
        done = playback_sync("--config", cfg, "--data-dir", data, *args, home=tmp_path)
        assert_clean_failure(done, EXIT_STORAGE, "newer Playback Sync", "0099", "left untouched")
    assert digest(data / "queue.sqlite") == before                   # never downgraded or changed
    assert not [p for p in os.listdir(data) if ".corrupt-" in p]     # nor moved aside as damaged
    assert not jellyfin.user_data(jellyfin.uid, jellyfin.iid).played


# -- settings that are not numbers --------------------------------------------------------------

@pytest.mark.parametrize("sync, extra, key", [
    ("watched_percent = nan", "", "sync.watched_percent"),
    ("progress_interval = inf", "", "sync.progress_interval"),
    ("retention_days = -inf", "", "sync.retention_days"),
    ("", "connect_timeout = nan\n", "servers[1].connect_timeout"),
    ("", "read_timeout = inf\n", "servers[1].read_timeout"),
])
def test_non_finite_numbers_are_refused_with_the_key_named(tmp_path, jellyfin, sync, extra, key):
    cfg = write_config(tmp_path / "c.toml", jellyfin, extra=extra, sync=sync)
    done = playback_sync("--config", cfg, "status", "--no-check", home=tmp_path)
    assert_clean_failure(done, EXIT_USAGE, key, "not a finite number", str(cfg))


@pytest.mark.parametrize("setting", ["watched_percent", "progress_interval", "retention_days",
                                     "jellyfin_connect_timeout", "jellyfin_read_timeout"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_kodi_settings_refuse_non_finite_numbers_naming_the_setting(setting, value):
    flat = {"jellyfin_enabled": True, "jellyfin_url": "http://127.0.0.1:1", "jellyfin_token": "t",
            "jellyfin_user_id": "u", setting: value}
    with pytest.raises(ConfigError) as e:
        config_from_flat(flat)
    assert f"({setting})" in str(e.value) and "not a finite number" in str(e.value)


def test_deeply_nested_toml_is_a_clear_error_naming_the_file(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    done = playback_sync("--config", cfg, "status", "--no-check", home=tmp_path)
    assert_clean_failure(done, EXIT_USAGE, str(cfg), "too deeply")


# -- the item index ------------------------------------------------------------------------------

def test_a_folder_where_the_index_should_be_is_moved_aside_and_identify_and_sync_work(tmp_path, jellyfin):
    data = tmp_path / "data"
    (data / "index.sqlite").mkdir(parents=True)
    (data / "index.sqlite" / "something.txt").write_text("not ours")
    q = SyncQueue(str(data))
    q.enqueue_change(Change(jellyfin.iid, "home", jellyfin.uid, "mark_watched"))   # identified before
    q.close()
    cfg = write_config(tmp_path / "c.toml", jellyfin)
    done = playback_sync("--config", cfg, "--data-dir", data, "sync", "--timeout", "10", home=tmp_path)
    assert done.returncode == EXIT_OK and "Traceback" not in done.stderr, done.stderr
    assert jellyfin.user_data(jellyfin.uid, jellyfin.iid).played
    done = playback_sync("--config", cfg, "--data-dir", data, "identify", "/mnt/media/clip.mkv", home=tmp_path)
    assert done.returncode == EXIT_OK and jellyfin.iid in done.stdout, (done.stdout, done.stderr)
    [aside] = [p for p in os.listdir(data) if p.startswith("index.sqlite.unusable-")]
    assert (data / aside / "something.txt").read_text() == "not ours"     # moved, not deleted


def test_identify_on_a_read_only_data_folder_uses_a_temporary_index_and_says_so(tmp_path, jellyfin):
    cfg = write_config(tmp_path / "c.toml", jellyfin)
    with tmpfs(tmp_path / "ro", 256) as disk:
        remount(disk, "ro")
        done = playback_sync("--config", cfg, "--data-dir", disk, "identify", "/mnt/media/clip.mkv",
                             home=tmp_path)
    assert done.returncode == EXIT_OK and jellyfin.iid in done.stdout, (done.stdout, done.stderr)
    assert "item index" in done.stderr and "temporary" in done.stderr and "Traceback" not in done.stderr


# -- a full disk ---------------------------------------------------------------------------------

def test_full_disk_with_an_existing_queue_says_the_disk_is_full_and_keeps_the_queue(tmp_path, jellyfin):
    cfg = write_config(tmp_path / "c.toml", jellyfin)
    with tmpfs(tmp_path / "small", 1024) as disk:
        q = SyncQueue(str(disk))
        ids = [q.enqueue_change(Change(f"item-{i}", "home", jellyfin.uid, "progress_update", position_ms=i))
               for i in range(20)]
        q.close()
        filler = fill(disk)
        for args in (("status", "--no-check"), ("sync", "--timeout", "5")):
            done = playback_sync("--config", cfg, "--data-dir", disk, *args, home=tmp_path)
            assert_clean_failure(done, EXIT_STORAGE, "is full", "free some space", str(disk / "queue.sqlite"))
        filler.unlink()
        q = SyncQueue(str(disk))
        try:
            assert [r.id for r in q.get_pending()] == ids                 # nothing lost
        finally:
            q.close()


def test_a_change_to_a_file_whose_name_is_not_utf8_survives_the_queue(tmp_path):
    """Recorded against its reference (record first), a non-UTF-8 file name is kept byte for byte,
    and so is one in an older version's journal (imported at start)."""
    import json

    from playbacksync import legacy_journal
    from playbacksync.changes import Change
    from playbacksync.tracker.events import MediaRef

    name = os.fsdecode(b"/media/caf\xe9 \xff.mkv")
    q = SyncQueue(str(tmp_path))
    try:
        rid = q.enqueue_change(Change(media_item_id=None, source_id="jf", user_id="", change_type="mark_watched",
                                      created_at=1.0, media=MediaRef(path=name, title="caf\udce9")))
        back = q.get(rid).media
    finally:
        q.close()
    assert os.fsencode(back.path) == b"/media/caf\xe9 \xff.mkv" and back.title == "caf\udce9"
    old = tmp_path / "unqueued-changes.jsonl.77"
    old.write_text(json.dumps({"kind": "tracked", "media": {"path": name, "title": "t"}, "change_type": "mark_watched",
                               "position_ms": None, "duration_ms": 1, "created_at": 1.0}) + "\n")
    _digest, [tracked], bad = legacy_journal.read(str(old))
    assert bad == 0 and os.fsencode(tracked.media.path) == b"/media/caf\xe9 \xff.mkv"