"""The playback-sync command end to end: real queue file, real HTTP to the spec-validating fakes."""
import json
import os
import subprocess
import sys

import pytest

from playbacksync import cli
from playbacksync.changes import Change, PROGRESS, WATCHED
from playbacksync.queue import SyncQueue
from tests.fakes.base import fail_on_spec_violations  # noqa: F401  (autouse: spec violations fail tests)
from tests.fakes.jellyfin import JellyfinFake
from tests.fakes.mediabrowser import TICKS_PER_SECOND

TOKEN = "cli-token-7f3a9e1b2c"


@pytest.fixture
def env(tmp_path, monkeypatch):
    for var, sub in (("XDG_STATE_HOME", "state"), ("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.setenv("PLAYBACK_SYNC_DATA_DIR", str(tmp_path / "queue"))
    monkeypatch.delenv("PLAYBACK_SYNC_CONFIG", raising=False)
    return tmp_path


@pytest.fixture
def jellyfin():
    with JellyfinFake(version="10.10.7") as fake:
        uid = fake.add_user("alice", "pass")
        fake.issue_token(uid, TOKEN)
        iid = fake.add_item("Clip", path="/srv/media/clip one.mkv", provider_ids={"Imdb": "tt0000001"}, runtime_s=600)
        fake.uid, fake.iid = uid, iid
        yield fake


def write_config(path, fake, token=TOKEN, extra=""):
    path.write_text(f"""
[[servers]]
id = "home"
type = "jellyfin"
url = "{fake.url}"
token = "{token}"
user_id = "{fake.uid}"
path_mappings = [{{ local = "/mnt/media", remote = "/srv/media" }}]
{extra}
""")
    return str(path)


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_status_without_config_reports_empty_queue(env, capsys):
    code, out, _ = run(capsys, "status", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["servers"] == {} and doc["failed"] == []
    assert doc["queue"].startswith(str(env / "queue"))


def test_status_shows_server_state_and_counts(env, jellyfin, capsys):
    cfg = write_config(env / "c.toml", jellyfin)
    q = SyncQueue(str(env / "queue"))
    q.enqueue_change(Change(jellyfin.iid, "home", jellyfin.uid, PROGRESS, position_ms=5000, created_at=1.0))
    q.close()
    code, out, _ = run(capsys, "--config", cfg, "status", "--json")
    doc = json.loads(out)
    assert code == 0
    assert doc["servers"]["home"]["state"] == "online"
    assert doc["servers"]["home"]["server"]["name"] == jellyfin.server_name
    counts = doc["servers"]["home"]["counts"]
    assert counts["pending"] == 1 and counts.get("failed", 0) == 0 and counts.get("synced", 0) == 0
    code, out, _ = run(capsys, "--config", cfg, "status")
    assert "home" in out and "online" in out and TOKEN not in out


def test_status_lists_changes_waiting_to_identify_with_the_reason(env, jellyfin, capsys):
    from playbacksync.tracker.events import MediaRef

    cfg = write_config(env / "c.toml", jellyfin)
    q = SyncQueue(str(env / "queue"))
    rid = q.enqueue_change(Change(None, "home", jellyfin.uid, WATCHED, created_at=1.0,
                                  media=MediaRef(path="/elsewhere/film.mkv", title="The Film")))
    [row] = q.claim("home")
    q.mark_retry(rid, "waiting to identify: no path mapping covers /elsewhere/film.mkv", 0.0)
    q.close()
    code, out, _ = run(capsys, "--config", cfg, "status", "--no-check")
    assert "1 waiting to identify:" in out
    assert "The Film" in out and "waiting to identify: no path mapping covers /elsewhere/film.mkv" in out
    code, out, _ = run(capsys, "--config", cfg, "status", "--json", "--no-check")
    [waiting] = json.loads(out)["waiting_to_identify"]
    assert waiting["id"] == rid and waiting["title"] == "The Film"


def test_status_with_revoked_token_says_sign_in_again(env, jellyfin, capsys):
    cfg = write_config(env / "c.toml", jellyfin, token="wrong-token-123456")
    code, out, _ = run(capsys, "--config", cfg, "status", "--json")
    assert code == 1
    assert json.loads(out)["servers"]["home"]["state"] == "auth_required"
    assert "wrong-token-123456" not in out


def test_identify_json_by_path_mapping_and_no_match(env, jellyfin, capsys):
    cfg = write_config(env / "c.toml", jellyfin)
    code, out, _ = run(capsys, "--config", cfg, "identify", "--json", "/mnt/media/clip one.mkv")
    assert code == 0
    assert json.loads(out)["/mnt/media/clip one.mkv"]["home"] == {
        "item_id": jellyfin.iid, "title": "Clip", "method": "path", "reason": json.loads(out)["/mnt/media/clip one.mkv"]["home"]["reason"]}
    code, out, _ = run(capsys, "--config", cfg, "identify", "--json", "/elsewhere/clip one.mkv")
    assert code == 1
    result = json.loads(out)["/elsewhere/clip one.mkv"]["home"]
    assert result["item_id"] is None and result["method"] is None and result["reason"] and result["title"] is None


def test_bad_config_exits_2_naming_file_and_key(env, capsys):
    bad = env / "bad.toml"
    bad.write_text('[[servers]]\nid = "x"\ntype = "jellyfin"\nurl = "htp://nowhere"\n')
    code, _, err = run(capsys, "--config", str(bad), "status")
    assert code == 2
    assert str(bad) in err and "url" in err


def test_named_config_that_does_not_exist_is_an_error(env, capsys):
    code, _, err = run(capsys, "--config", str(env / "missing.toml"), "status")
    assert code == 2 and "missing.toml" in err


def test_sync_sends_queued_changes_and_retry_requeues_failed(env, jellyfin, capsys):
    cfg = write_config(env / "c.toml", jellyfin)
    q = SyncQueue(str(env / "queue"))
    q.enqueue_change(Change(jellyfin.iid, "home", jellyfin.uid, PROGRESS, position_ms=42_000, created_at=1.0))
    q.close()
    code, out, _ = run(capsys, "--config", cfg, "sync", "--timeout", "20")
    assert code == 0, out
    assert jellyfin.user_data(jellyfin.uid, jellyfin.iid).position_ticks == 42 * TICKS_PER_SECOND
    # A change the server keeps refusing ends failed; retry sends it again once the server is fine.
    gone = jellyfin.add_item("Gone", path="/srv/media/gone.mkv")
    jellyfin.remove_item(gone)
    q = SyncQueue(str(env / "queue"))
    q.enqueue_change(Change(gone, "home", jellyfin.uid, WATCHED, completed=True, created_at=2.0))
    q.close()
    code, out, _ = run(capsys, "--config", cfg, "sync", "--timeout", "20")
    assert code == 1 and "1 failed" in out
    code, out, _ = run(capsys, "--config", cfg, "status", "--json")
    failed = json.loads(out)["failed"]
    assert [f["item"] for f in failed] == [gone] and failed[0]["error"]
    jellyfin.add_item("Gone", path="/srv/media/gone.mkv", item_id=gone)
    code, out, _ = run(capsys, "--config", cfg, "retry", "--timeout", "20")
    assert code == 0, out
    assert jellyfin.user_data(jellyfin.uid, gone).played


@pytest.mark.parametrize("command", ["play", "status", "retry", "sync", "identify", "settings", "login", "history",
                                     "clear", "pause", "resume"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--help"])
    assert exit_.value.code == 0
    assert "usage: playback-sync " + command in capsys.readouterr().out


def test_console_script_runs(env):
    exe = os.path.join(os.path.dirname(sys.executable), "playback-sync")
    done = subprocess.run([exe, "status", "--no-check"], capture_output=True, text=True, timeout=60, env=os.environ)
    assert done.returncode == 0, done.stderr
    assert "Queue:" in done.stdout and "No servers configured" in done.stdout
    logs = list((env / "state").rglob("playback-sync.log"))
    assert logs and oct(logs[0].stat().st_mode & 0o777) == "0o600"


def test_identify_provider_id_must_be_kind_equals_id(env, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["identify", "--provider-id", "tt0133093", "/x.mkv"])
    assert exit_.value.code == 2
    assert "KIND=ID" in capsys.readouterr().err


def test_identify_by_provider_id(env, jellyfin, capsys):
    cfg = write_config(env / "c.toml", jellyfin)
    code, out, _ = run(capsys, "--config", cfg, "identify", "--json", "--provider-id", "imdb=tt0000001",
                       "/nowhere/renamed.mkv")
    result = json.loads(out)["/nowhere/renamed.mkv"]["home"]
    assert code == 0 and result["item_id"] == jellyfin.iid and result["method"] == "provider_id"


def test_status_refuses_a_token_of_another_user(env, jellyfin, capsys):
    # An administrator's token with alice's user id: on Jellyfin its UserData writes would land on the
    # administrator (jellyfin#15733). status says so and the worker would pause, sending nothing.
    root = jellyfin.add_user("root", "pw", is_admin=True)
    cfg = write_config(env / "c.toml", jellyfin, token=jellyfin.issue_token(root, "admin-token-987654"))
    code, out, _ = run(capsys, "--config", cfg, "status", "--json")
    assert code == 1
    entry = json.loads(out)["servers"]["home"]
    assert entry["state"] == "auth_required"
    assert "belongs to user 'root'" in entry["error"] and "own token" in entry["error"]
    assert "admin-token-987654" not in out
