"""The fakes' server rules, over real HTTP, as each server version's source says (citations in
tests/fakes/jellyfin.py and tests/fakes/emby.py). These pin the reference the backend suites and
the live-session checks are measured against."""
from __future__ import annotations

import contextlib

import pytest
import requests

from tests.fakes.base import fail_on_spec_violations  # noqa: F401
from tests.fakes.emby import EmbyFake
from tests.fakes.jellyfin import VERSIONS, JellyfinFake
from tests.fakes.mediabrowser import TICKS_PER_SECOND

S = TICKS_PER_SECOND


@contextlib.contextmanager
def _server(version):
    fake = (EmbyFake() if version == "emby" else JellyfinFake(version=version)).start()
    try:
        uid = fake.add_user("alice", "pw")
        tok = fake.issue_token(uid)
        prefix = "/emby" if version == "emby" else ""
        s = requests.Session()
        s.headers["Authorization"] = f'MediaBrowser Client="t", Device="d", DeviceId="dev1", Version="1", Token="{tok}"'
        if version == "emby":
            s.headers["X-Emby-Token"] = tok
        yield fake, uid, s, fake.url + prefix
        s.close()
    finally:
        fake.stop()


def _report(s, base, kind, item, ticks=None, **extra):
    body = {"ItemId": item, **extra}
    if ticks is not None:
        body["PositionTicks"] = ticks
    r = s.post(base + "/Sessions/Playing" + {"start": "", "progress": "/Progress", "stopped": "/Stopped"}[kind],
               json=body)
    assert r.status_code == 204, r.text


ALL = [*VERSIONS, "emby"]


@pytest.mark.parametrize("version", ALL)
def test_session_start_counts_a_play_and_clears_played_until_12(version):
    with _server(version) as (fake, uid, s, base):
        item = fake.add_item("Film", runtime_s=3600)
        fake.set_user_data(uid, item, played=True, play_count=1)
        _report(s, base, "start", item, 0)
        d = fake.user_data(uid, item)
        assert d.play_count == 2
        # SessionManager: Played=false removed in 12.0; Emby's (last open source) never cleared it for videos
        assert d.played is (version.startswith("12.") or version == "emby")
        assert fake.now_playing


@pytest.mark.parametrize("version", ALL)
@pytest.mark.parametrize("runtime_s,at_s,want_pos_s,want_played", [
    (3600, 100, 0, False),       # under MinResumePct 5 %: position dropped
    (3600, 1800, 1800, False),   # in between: resume point
    (3600, 3300, 0, True),       # over MaxResumePct 90 %: played
    (240, 120, 0, True),         # shorter than MinResumeDurationSeconds 300: played
    (None, 120, 0, True),        # no runtime: played
])
def test_progress_and_stop_apply_the_resume_rules_without_counting(version, runtime_s, at_s, want_pos_s, want_played):
    for kind in ("progress", "stopped"):
        with _server(version) as (fake, uid, s, base):
            item = fake.add_item("Film", runtime_s=runtime_s)
            _report(s, base, kind, item, at_s * S, **({"IsPaused": True} if kind == "progress" else {}))
            d = fake.user_data(uid, item)
            assert (d.position_ticks, d.played, d.play_count) == (want_pos_s * S, want_played, 0)


@pytest.mark.parametrize("version", ALL)
def test_stop_without_position_counts_a_finished_play(version):
    with _server(version) as (fake, uid, s, base):
        item = fake.add_item("Film", runtime_s=3600)
        _report(s, base, "stopped", item)
        d = fake.user_data(uid, item)
        assert (d.played, d.play_count) == (True, 1)


@pytest.mark.parametrize("version", VERSIONS)
def test_end_minus_one_second_is_the_end_from_10_11(version):
    with _server(version) as (fake, uid, s, base):
        fake.rules = type(fake.rules)(**{**fake.rules.__dict__, "max_resume_pct": 100.0})
        item = fake.add_item("Film", runtime_s=1000)
        _report(s, base, "progress", item, 999 * S + S // 2)
        assert fake.user_data(uid, item).played is (tuple(map(int, version.split("."))) >= (10, 11))


@pytest.mark.parametrize("version", VERSIONS)
def test_mark_played_with_and_without_a_date(version):
    with _server(version) as (fake, uid, s, base):
        item = fake.add_item("Film")
        fake.set_user_data(uid, item, play_count=3, last_played=1_600_000_000.0, position_ticks=5 * S)
        route = f"/UserPlayedItems/{item}" if version != "10.8.13" else f"/Users/{uid}/PlayedItems/{item}"
        assert s.post(base + route).ok
        d = fake.user_data(uid, item)
        assert (d.played, d.play_count, d.position_ticks) == (True, 3, 0)  # no date: at least 1, not +1
        # 10.9+ keep the old date when none is given; 10.8 stamps now.
        assert (d.last_played == 1_600_000_000.0) is (version != "10.8.13")
        assert s.post(base + route, params={"datePlayed": "2024-01-02T03:04:05.0000000Z"}).ok
        d = fake.user_data(uid, item)
        assert d.play_count == 4 and d.last_played == pytest.approx(1704164645.0)


@pytest.mark.parametrize("version", [v for v in VERSIONS if v != "10.8.13"])
def test_user_data_write_sets_exactly_what_it_names(version):
    with _server(version) as (fake, uid, s, base):
        item = fake.add_item("Clip", runtime_s=60)  # short: the resume rules would mark it played
        fake.set_user_data(uid, item, played=True, play_count=4)
        r = s.post(base + f"/UserItems/{item}/UserData", json={"PlaybackPositionTicks": 30 * S})
        assert r.ok
        d = fake.user_data(uid, item)
        assert (d.position_ticks, d.played, d.play_count) == (30 * S, True, 4)


def test_10_8_has_no_user_data_write_route():
    with _server("10.8.13") as (fake, uid, s, base):
        item = fake.add_item("Film")
        assert s.post(base + f"/UserItems/{item}/UserData", json={"PlaybackPositionTicks": 1}).status_code == 404
        fake.violations.clear()


@pytest.mark.parametrize("version", [v for v in VERSIONS if v != "10.8.13"])
def test_admin_token_user_data_write_lands_on_the_admin(version):
    # jellyfin#15733: userId is ignored for an administrator's UserData write.
    fake = JellyfinFake(version=version).start()
    try:
        admin = fake.add_user("root", "pw", is_admin=True)
        bob = fake.add_user("bob", "pw")
        item = fake.add_item("Film")
        hdr = {"Authorization": f'MediaBrowser Client="t", Device="d", DeviceId="x", Version="1", '
                                f'Token="{fake.issue_token(admin)}"'}
        r = requests.post(fake.url + f"/UserItems/{item}/UserData", params={"userId": bob},
                          json={"PlaybackPositionTicks": 1800 * S}, headers=hdr)
        assert r.ok
        assert fake.user_data(bob, item).position_ticks == 0
        assert fake.user_data(admin, item).position_ticks == 1800 * S
    finally:
        fake.stop()


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("how", ["X-Emby-Token", "X-MediaBrowser-Token", "api_key", "X-Emby-Authorization",
                                 "Emby scheme", "ApiKey", "MediaBrowser scheme"])
def test_legacy_credentials_refused_from_12(version, how):
    fake = JellyfinFake(version=version).start()
    try:
        tok = fake.issue_token(fake.add_user("alice", "pw"))
        fields = f'Client="t", Device="d", DeviceId="x", Version="1", Token="{tok}"'
        headers, params = {}, {}
        if how in ("X-Emby-Token", "X-MediaBrowser-Token"):
            headers[how] = tok
        elif how in ("api_key", "ApiKey"):
            params[how] = tok
        elif how == "X-Emby-Authorization":
            headers[how] = "MediaBrowser " + fields
        else:
            headers["Authorization"] = how.split()[0] + " " + fields
        r = requests.get(fake.url + "/System/Info", headers=headers, params=params)
        legacy = how not in ("ApiKey", "MediaBrowser scheme")
        assert r.status_code == (401 if legacy and version.startswith("12.") else 200)
    finally:
        fake.stop()


@pytest.mark.parametrize("version", ALL)
def test_idle_session_is_stopped_after_five_minutes(version):
    with _server(version) as (fake, uid, s, base):
        clock = [1_000_000.0]
        fake.now = lambda: clock[0]
        item = fake.add_item("Film", runtime_s=3600)
        _report(s, base, "start", item, 0)
        _report(s, base, "progress", item, 1200 * S)
        clock[0] += 299
        assert fake.expire_idle_sessions() == [] and fake.now_playing
        clock[0] += 2
        assert len(fake.expire_idle_sessions()) == 1 and not fake.now_playing
        d = fake.user_data(uid, item)
        assert (d.position_ticks, d.play_count) == (1200 * S, 1)


def test_plex_scrobble_timeline_and_threshold_once_per_session():
    from tests.fakes.plex import FakePlex

    fake = FakePlex().start()
    try:
        lib = fake.library
        key = next(k for k, i in lib.items.items() if i.type == "movie")
        dur = lib.items[key].duration
        h = {"X-Plex-Token": fake.token, "X-Plex-Client-Identifier": "tv-1", "Accept": "application/json"}

        def timeline(state, t, **extra):
            r = requests.post(fake.url + "/:/timeline", headers=h,
                              params={"ratingKey": key, "key": f"/library/metadata/{key}", "state": state,
                                      "time": t, "duration": dur, **extra})
            assert r.ok, r.text

        timeline("playing", dur // 3)
        assert (lib.state(fake.token, key).view_offset, lib.state(fake.token, key).view_count) == (dur // 3, 0)
        for t in (int(dur * 0.91), int(dur * 0.95), int(dur * 0.99)):  # one session past the threshold
            timeline("playing", t)
        timeline("stopped", int(dur * 0.99))
        assert (lib.state(fake.token, key).view_count, lib.state(fake.token, key).view_offset) == (1, 0)
        assert requests.put(fake.url + "/:/scrobble", headers=h,
                            params={"identifier": "com.plexapp.plugins.library", "key": key}).ok
        assert lib.state(fake.token, key).view_count == 2
        timeline("stopped", dur // 2, offline="1", updated="1700000000")
        assert lib.state(fake.token, key).last_viewed_at == 1700000000
    finally:
        fake.stop()
