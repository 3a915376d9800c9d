"""What only Jellyfin or only Emby does: route choice by version, 10.8's
session-based resume point, user discovery, Emby's server-side filters."""
from __future__ import annotations

import contextlib
import time

import pytest

from playbacksync.backends import make_backend
from playbacksync.backends.base import AuthError
from playbacksync.changes import PROGRESS, WATCHED, Change
from playbacksync.config import ServerConfig
from tests.fakes.base import fail_on_spec_violations  # noqa: F401
from tests.fakes.emby import EmbyFake
from tests.fakes.jellyfin import JellyfinFake
from tests.fakes.mediabrowser import TICKS_PER_SECOND


@contextlib.contextmanager
def _jellyfin(version, fake_cls=JellyfinFake, **over):
    """A started fake with one user, and a backend with her token (``over`` changes its config); both closed after."""
    fake = fake_cls(version=version).start()
    try:
        uid = fake.add_user("alice", "pw")
        cfg = dict(id="j", type="jellyfin", url=fake.url, token=fake.issue_token(uid), user_id=uid)
        b = make_backend(ServerConfig(**{**cfg, **over}))
        try:
            yield fake, uid, b
        finally:
            b.close()
    finally:
        fake.stop()


def _progress(item, ms):
    return Change(media_item_id=item, source_id="j", user_id="", change_type=PROGRESS, position_ms=ms,
                  created_at=time.time())


@pytest.mark.parametrize("version", ["10.8.13", "10.9.11", "12.0.0"])
def test_progress_route_follows_the_version(version):
    with _jellyfin(version) as (fake, uid, b):
        item = fake.add_item("Film", path="/f.mkv", runtime_s=3600)
        b.apply(_progress(item, 1_000_000))  # no check() first: the backend asks for the version itself
        paths = [r.path for r in fake.requests if r.method == "POST"]
        if version == "10.8.13":
            # Never a session start: on 10.8 each start adds a play and clears Played.
            assert paths == ["/Sessions/Playing/Progress", "/Sessions/Playing/Stopped"]
            assert [s["kind"] for s in fake.sessions] == ["progress", "stopped"]
            assert fake.sessions[-1]["PositionTicks"] == 1000 * TICKS_PER_SECOND
            assert not fake.now_playing  # the stop takes it off the dashboard
        else:
            assert paths == [f"/UserItems/{item}/UserData"] and not fake.sessions
        assert fake.user_data(uid, item).position_ticks == 1000 * TICKS_PER_SECOND


def test_10_8_server_resume_rules_apply():
    # On 10.8 the position goes through a playback session, so the server's own
    # rules decide: under 5 % is "not started", over 90 % is "played".
    with _jellyfin("10.8.13") as (fake, uid, b):
        item = fake.add_item("Film", runtime_s=1000)
        b.apply(_progress(item, 20_000))
        assert fake.user_data(uid, item).position_ticks == 0
        b.apply(_progress(item, 950_000))
        assert fake.user_data(uid, item).played is True


def test_10_8_many_progress_updates_leave_count_and_flag_alone():
    # The reported fault: each update was a start+stop pair, so one partial viewing gave count 17.
    with _jellyfin("10.8.13") as (fake, uid, b):
        item = fake.add_item("Film", runtime_s=7200)
        fake.set_user_data(uid, item, played=True, play_count=2)
        for minute in range(10, 27):
            b.apply(_progress(item, minute * 60_000))
        d = fake.user_data(uid, item)
        assert (d.play_count, d.played, d.position_ticks) == (2, True, 26 * 60 * TICKS_PER_SECOND)


@pytest.mark.parametrize("runtime_s", [240, None])
def test_10_8_short_or_unknown_length_item_is_not_marked_watched_by_a_position(runtime_s):
    # UpdatePlayState marks an item under MinResumeDurationSeconds (300 s), or of unknown runtime,
    # played when any position between 5 % and 90 % is reported: Playback Sync sends none there.
    with _jellyfin("10.8.13") as (fake, uid, b):
        item = fake.add_item("Clip", runtime_s=runtime_s)
        b.apply(_progress(item, 100_000))
        d = fake.user_data(uid, item)
        assert (d.played, d.play_count) == (False, 0)
        assert not [r for r in fake.requests if r.path.startswith("/Sessions")]


def test_user_id_found_from_token_when_not_configured():
    with _jellyfin("10.10.7", user_id="") as (fake, uid, b):
        item = fake.add_item("Film")
        b.apply(Change(media_item_id=item, source_id="j", user_id="", change_type=WATCHED, created_at=time.time()))
        assert fake.user_data(uid, item).played


def test_jellyfin_sends_the_mediabrowser_header():
    with _jellyfin("12.0.0", device_id="dev-42") as (fake, uid, b):
        tok = b.server.token
        b.check()
        auth = fake.requests[-1].headers["Authorization"]
        assert auth.startswith('MediaBrowser Client="Playback Sync", Device="')
        assert 'DeviceId="dev-42"' in auth and f'Token="{tok}"' in auth and 'Version="' in auth
        assert "X-Emby-Token" not in fake.requests[-1].headers  # off by default from 12.0


@pytest.fixture(scope="module")
def emby():
    fake = EmbyFake().start()
    uid = fake.add_user("alice", "pw")
    fake.ids = {
        "matrix": fake.add_item("The Matrix", path="/m/The Matrix.mkv", provider_ids={"Imdb": "tt0133093"}),
        "reloaded": fake.add_item("Matrix Reloaded", path="/m/Reloaded.mkv", provider_ids={"Imdb": "tt0234215",
                                                                                            "Tmdb": "604"}),
        "other": fake.add_item("Other", path="/m/Other.mkv", provider_ids={"Tvdb": "81189"}),
    }
    b = make_backend(ServerConfig(id="e", type="emby", url=fake.url, token=fake.issue_token(uid), user_id=uid))
    yield fake, b
    b.close()
    fake.stop()


def test_emby_find_by_provider_id(emby):
    fake, b = emby
    got = b.find_items(provider_ids={"imdb": "tt0133093"})
    assert [i.item_id for i in got] == [fake.ids["matrix"]]
    got = b.find_items(provider_ids={"tmdb": "604", "tvdb": "81189"})
    assert {i.item_id for i in got} == {fake.ids["reloaded"], fake.ids["other"]}
    assert "AnyProviderIdEquals" in fake.requests[-1].query  # filtered by the server, not here


def test_emby_find_by_path(emby):
    fake, b = emby
    got = b.find_items(path="/m/Reloaded.mkv")
    assert [(i.item_id, i.provider_ids) for i in got] == [(fake.ids["reloaded"], {"imdb": "tt0234215",
                                                                                  "tmdb": "604"})]
    assert b.find_items(path="/m/none.mkv") == []
    with pytest.raises(ValueError):
        b.find_items()


def test_emby_progress_keeps_favourite_and_count(emby):
    fake, b = emby
    iid, uid = fake.ids["other"], next(iter(fake.users))
    fake.set_user_data(uid, iid, played=True, play_count=5)
    b.apply(_progress(iid, 120_000))
    d = fake.user_data(uid, iid)
    assert (d.position_ticks, d.played, d.play_count) == (120 * TICKS_PER_SECOND, True, 5)


class _NoPagingJellyfin(JellyfinFake):
    """A server (or proxy) that ignores startIndex/limit and always sends everything."""

    def page(self, uid, items, start, limit, fields):
        return super().page(uid, items, 0, None, fields)


def test_iter_items_stops_when_the_server_ignores_paging():
    with _jellyfin("10.10.7", fake_cls=_NoPagingJellyfin) as (fake, uid, b):
        ids = {fake.add_item(f"Item {i}", path=f"/x/{i}.mkv") for i in range(5)}
        got = [i.item_id for i in b.iter_items(page_size=2)]
        assert sorted(got) == sorted(ids)  # each once, and it ended


@pytest.mark.parametrize("kind", ["jellyfin-10.8.13", "jellyfin-10.11.11", "jellyfin-12.0.0", "emby"])
def test_another_users_token_is_refused_before_anything_is_sent(kind):
    fake = EmbyFake() if kind == "emby" else JellyfinFake(version=kind.split("-")[1])
    fake.start()
    try:
        bob = fake.add_user("bob", "pw")
        root = fake.add_user("root", "pw", is_admin=True)
        item = fake.add_item("Film", runtime_s=3600)
        b = make_backend(ServerConfig(id="j", type=kind.split("-")[0], url=fake.url, token=fake.issue_token(root),
                                      user_id=bob, username="bob"))
        with pytest.raises(AuthError, match="belongs to user 'root'.*not to the configured user 'bob'"):
            b.check()
        b.close()
        own = make_backend(ServerConfig(id="j", type=kind.split("-")[0], url=fake.url,
                                        token=fake.issue_token(bob), user_id=bob))
        own.check()
        own.apply(_progress(item, 1_800_000))
        own.close()
        assert fake.user_data(bob, item).position_ticks == 1800 * TICKS_PER_SECOND
        assert fake.user_data(root, item).position_ticks == 0
    finally:
        fake.stop()
