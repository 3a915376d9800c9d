"""One notification policy for mpv and Kodi (plugin/playbacksync/notify_policy.py)."""
import ast
import pathlib
from types import SimpleNamespace

import pytest
from hypothesis import given, strategies as st

from playbacksync.changes import QueuedChange
from playbacksync.notify_policy import NotifyPolicy
from playbacksync.tracker.events import MediaRef
from playbacksync.worker.events import KINDS, WorkerEvent

HOSTS = pathlib.Path(__file__).resolve().parents[1] / "plugin" / "playbacksync" / "hosts"


def row(change_type="progress_update", item_id="a1b2c3d4e5f60718293a4b5c6d7e8f90", title="Big Buck Bunny"):
    r = QueuedChange(media_item_id=item_id, source_id="jelly", user_id="u", change_type=change_type,
                     position_ms=83000, duration_ms=600000, completed=change_type == "mark_watched",
                     created_at=1.0)
    try:
        object.__setattr__(r, "media", MediaRef(path="/m/bbb.mkv", title=title))
    except Exception:
        pass
    return r


def event(kind, change=None, source="jelly", message=None):
    if message is None:
        what = f"position 0:01:23 ({change.media_item_id})" if change else "x"
        message = {"completed": f"{what} saved on {source}", "progress": f"sending 1 change to {source}",
                   "failed": f"{what} could not be saved on {source}: HTTP 500"}.get(kind, "boom")
    if kind in KINDS:
        return WorkerEvent(kind, source, message, change)
    return SimpleNamespace(kind=kind, source_id=source, message=message, change=None)  # a ServiceMessage


@pytest.mark.parametrize("setting", ["all", "errors", "off"])
def test_progress_is_never_announced(setting):
    policy = NotifyPolicy(setting, ["jelly"])
    for _ in range(5):  # every 10 s in real use
        assert policy.notice_for(event("progress")) is None
        assert policy.notice_for(event("completed", row("progress_update"))) is None
        assert policy.notice_for(event("superseded", row("progress_update"))) is None


def test_all_announces_watched_marks_with_the_title_not_the_item_id():
    policy = NotifyPolicy("all", ["jelly"])
    r = row("mark_watched")
    notice = policy.notice_for(event("completed", r, message=f"watched ({r.media_item_id}) saved on jelly"))
    assert notice and not notice.error
    assert r.media_item_id not in notice.text and "watched" in notice.text and "jelly" in notice.text
    assert NotifyPolicy("errors", ["jelly"]).notice_for(event("completed", r)) is None


def test_failed_text_is_plain_and_whole():
    policy = NotifyPolicy("errors", ["jelly"])
    r = row("mark_watched")
    long_reason = "the server answered 500 Internal Server Error " * 4
    notice = policy.notice_for(event("failed", r, message=f"watched ({r.media_item_id}) could not be saved on "
                                                          f"jelly: {long_reason}"))
    assert notice.error
    assert r.media_item_id not in notice.text
    assert notice.text.endswith(long_reason.strip())  # not cut
    assert not notice.text.startswith(("Playback Sync", "signin", "failed"))


@pytest.mark.parametrize("kind", sorted(set(KINDS) | {"not_identified"}))
def test_a_disabled_server_is_silent(kind):
    policy = NotifyPolicy("all", servers=["plex"])  # "jelly" is disabled
    for _ in range(3):
        assert policy.notice_for(event(kind, row("mark_watched"))) is None


def test_disabled_server_not_identified_message_from_the_service_is_silent():
    from playbacksync.app import ServiceMessage

    policy = NotifyPolicy("errors", servers=["plex"])
    assert policy.notice_for(ServiceMessage("not_identified", "jelly", "server is disabled in the settings")) is None
    assert policy.notice_for(ServiceMessage("not_identified", "plex", "no match")).text == "not synced to plex: no match"


def test_tokens_never_shown():
    policy = NotifyPolicy("errors")
    notice = policy.notice_for(event("failed", message="GET http://h/Items?api_key=SECRETSECRET failed"))
    assert "SECRETSECRET" not in notice.text and "http://h/Items?…" in notice.text


@given(st.lists(st.tuples(st.sampled_from(sorted(set(KINDS) | {"not_identified"})),
                          st.sampled_from(["jelly", "plex", "off-server"]),
                          st.sampled_from(["progress_update", "mark_watched", "mark_unwatched"]),
                          st.booleans()), max_size=30),
       st.sampled_from(["all", "errors", "off"]))
def test_policy_rules_hold_for_any_sequence(steps, setting):
    policy = NotifyPolicy(setting, ["jelly", "plex"])
    for kind, source, change_type, new_file in steps:
        if new_file:
            policy.new_file()
        r = row(change_type)
        notice = policy.notice_for(event(kind, r, source=source))
        if notice is None:
            continue
        assert setting != "off" or kind == "online"
        assert source != "off-server"
        assert kind != "progress" and not (kind == "completed" and change_type == "progress_update")
        assert r.media_item_id not in notice.text and notice.text == notice.text.strip()


def test_hosts_use_the_shared_policy_only():
    """No host keeps a notification rule of its own: they import notify_policy."""
    for path in HOSTS.rglob("*.py"):
        source = path.read_text()
        tree = ast.parse(source)
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        assert not {"_NOTIFY_ALL", "_NOTIFY_ERRORS"} & names, path
        assert "class OsdPolicy" not in source and "class NotifyPolicy" not in source, path
    imports = [p for p in HOSTS.rglob("*.py") if "notify_policy import" in p.read_text()]
    assert any("mpv" in p.parts for p in imports) and any("kodi" in str(p) for p in imports)
