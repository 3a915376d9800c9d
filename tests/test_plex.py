"""PlexBackend against the spec-validating fake Plex: state round trips, listings, lookups."""
from __future__ import annotations

import pytest
import requests

from playbacksync.backends.base import AuthError, PermanentError
from playbacksync.backends.plex import PART_WALK_INTERVAL, PlexBackend, provider_ids
from playbacksync.changes import PROGRESS, UNWATCHED, WATCHED, Change
from playbacksync.config import ServerConfig
from tests.fakes.base import fail_on_spec_violations  # noqa: F401
from tests.fakes.plex import FakePlex
from tests.fakes.plex_state import Item


@pytest.fixture
def fake():
    with FakePlex() as f:
        yield f


def backend_for(fake, **kw) -> PlexBackend:
    cfg = dict(id="plex", type="plex", url=fake.url, token=fake.token, device_id="dev-1",
               connect_timeout=2.0, read_timeout=3.0)
    cfg.update(kw)
    return PlexBackend(ServerConfig(**cfg))


def change(kind, item="101", **kw):
    return Change(media_item_id=item, source_id="plex", user_id="", change_type=kind, **kw)


def test_check_reports_name_id_and_version(fake):
    info = backend_for(fake).check()
    assert info.name == "Fake Plex"
    assert info.server_id == "fa4e0c3f9d8a4b2e9c1d7f6a5b4c3d2e"
    assert info.version.startswith("1.41")
    # /identity went without a token (it needs none); the root call carried it.
    ident = [r for r in fake.requests if r.path == "/identity"][0]
    assert "X-Plex-Token" not in ident.headers
    assert [r for r in fake.requests if r.path == "/"][0].headers["X-Plex-Token"] == fake.token


def test_check_with_a_wrong_token_is_an_auth_error(fake):
    with pytest.raises(AuthError):
        backend_for(fake, token="not-the-token").check()


def test_every_request_carries_the_plex_headers(fake):
    b = backend_for(fake)
    b.check()
    b.apply(change(PROGRESS, position_ms=5000, duration_ms=660_000))
    b.read_state("101")
    for r in fake.requests:
        assert r.headers["X-Plex-Client-Identifier"] == "dev-1"
        for h in ("X-Plex-Product", "X-Plex-Version", "X-Plex-Device"):
            assert r.headers.get(h), (h, r.path)
        assert r.headers["Accept"] == "application/json"


def test_progress_watched_unwatched_round_trip(fake):
    b = backend_for(fake)
    b.apply(change(PROGRESS, position_ms=125_000, duration_ms=660_000))
    state = b.read_state("101")
    assert (state.position_ms, state.played, state.play_count) == (125_000, False, 0)
    assert state.last_played_at is not None
    timeline = [r for r in fake.requests if r.path == "/:/timeline"][-1]
    assert timeline.method == "POST"
    assert timeline.query["ratingKey"] == ["101"] and timeline.query["key"] == ["/library/metadata/101"]
    assert timeline.query["time"] == ["125000"] and timeline.query["duration"] == ["660000"]

    b.apply(change(WATCHED))
    state = b.read_state("101")
    assert state.played and state.play_count == 1 and state.position_ms == 0
    scrobble = [r for r in fake.requests if r.path == "/:/scrobble"][-1]
    assert scrobble.method == "PUT"
    assert scrobble.query == {"identifier": ["com.plexapp.plugins.library"], "key": ["101"]}

    b.apply(change(UNWATCHED))
    state = b.read_state("101")
    assert not state.played and state.play_count == 0 and state.last_played_at is None
    assert [r for r in fake.requests if r.path == "/:/unscrobble"][-1].method == "PUT"


def test_progress_without_duration_takes_it_from_the_item(fake):
    b = backend_for(fake)
    b.apply(change(PROGRESS, item="201", position_ms=60_000))
    assert fake.requests[-1].query["duration"] == ["1200000"]
    assert b.read_state("201").position_ms == 60_000


def test_state_is_per_user(fake):
    fake.library.add_user("other-user-token", "other")
    backend_for(fake).apply(change(WATCHED, item="102"))
    other = backend_for(fake, token="other-user-token")
    assert not other.read_state("102").played
    assert backend_for(fake).read_state("102").played


def test_state_set_elsewhere_is_read_back(fake):
    fake.library.set_state(fake.token, "103", view_offset=42_000, view_count=3, last_viewed_at=1_700_000_000)
    state = backend_for(fake).read_state("103")
    assert state.position_ms == 42_000 and state.play_count == 3 and state.played
    assert state.last_played_at == 1_700_000_000.0


def test_missing_item(fake):
    b = backend_for(fake)
    assert b.get_item("9999") is None
    with pytest.raises(PermanentError):
        b.read_state("9999")
    with pytest.raises(PermanentError):
        b.apply(change(WATCHED, item="9999"))
    with pytest.raises(PermanentError):
        b.apply(change(PROGRESS, item="9999", position_ms=1000, duration_ms=5000))


def test_get_item_has_path_and_provider_ids(fake):
    item = backend_for(fake).get_item("202")
    assert item.item_id == "202"
    assert item.path == "/srv/media/TV/Show/Season 01/Show - S01E02.mkv"
    assert item.provider_ids == {"tvdb": "71002", "imdb": "tt2000002"}
    assert item.duration_ms == 1_200_000
    assert "Episode 2" in item.name


@pytest.mark.parametrize("page_size", [1, 2, 200])
def test_iter_items_pages_through_every_section(fake, page_size):
    items = list(backend_for(fake).iter_items(page_size=page_size))
    assert [i.item_id for i in items] == ["101", "102", "103", "201", "202", "203", "204"]
    assert all(i.path and i.provider_ids for i in items)
    listings = [r for r in fake.requests if r.path.endswith("/all") and r.path != "/library/sections/all"]
    assert all(r.query["X-Plex-Container-Size"] == [str(page_size)] for r in listings)
    assert all(r.query["includeGuids"] == ["1"] for r in listings)
    # Movies list type 1 and shows list episodes (type 4), never the show entries.
    assert {r.query["type"][0] for r in listings} == {"1", "4"}
    expected_pages = -(-3 // page_size) + -(-4 // page_size)
    assert len(listings) == expected_pages


def test_item_for_part(fake):
    b = backend_for(fake)
    assert b.item_for_part(1005) == "202"  # walks the library once
    walked = len(fake.requests)
    assert b.item_for_part("1001") == "101"  # answered from what the walk saw
    assert len(fake.requests) == walked
    assert b.item_for_part(424242) is None  # a full walk, finding nothing
    walked = len(fake.requests)
    assert b.item_for_part(424242) is None  # that walk was recent: no second one
    assert len(fake.requests) == walked
    assert b.item_for_part("not-a-number") is None


def test_item_for_part_walks_again_after_the_interval(fake):
    now = [1000.0]
    b = PlexBackend(ServerConfig(id="plex", type="plex", url=fake.url, token=fake.token, device_id="d"),
                    clock=lambda: now[0])
    assert b.item_for_part(777777) is None
    walked = len(fake.requests)
    assert b.item_for_part(777777) is None
    assert len(fake.requests) == walked
    fake.library.add_item(Item(rating_key="150", section="1", type="movie", title="New",
                               duration=1000, parts=[(777777, "/srv/new.mkv")]))
    now[0] += PART_WALK_INTERVAL
    assert b.item_for_part(777777) == "150"
    assert len(fake.requests) > walked


def test_provider_ids_parsing():
    assert provider_ids([{"id": "imdb://tt0133093"}, {"id": "TMDB://603"}, {"id": "tvdb://1"},
                         {"id": "plex://movie/abc"}, {"id": "imdb://"}, {}, "junk"]) == {
        "imdb": "tt0133093", "tmdb": "603", "tvdb": "1"}
    assert provider_ids(None) == {}


def test_fake_rejects_requests_the_spec_rejects(fake):
    h = {"X-Plex-Token": fake.token, "Accept": "application/json"}
    # No X-Plex-Client-Identifier: the spec requires it.
    r = requests.put(fake.url + "/:/scrobble", params={"identifier": "com.plexapp.plugins.library", "key": "101"},
                     headers=h, timeout=5)
    assert r.status_code == 400
    h["X-Plex-Client-Identifier"] = "x"
    r = requests.post(fake.url + "/:/timeline", params={"ratingKey": "101", "state": "rewinding"}, headers=h,
                      timeout=5)
    assert r.status_code == 400
    r = requests.put(fake.url + "/:/scrobble", params={"key": "101"}, headers=h, timeout=5)  # no identifier
    assert r.status_code == 400
    r = requests.get(fake.url + "/library/sections", headers=h, timeout=5)  # not in the 2025 spec
    assert r.status_code == 404
    r = requests.get(fake.url + "/library/metadata/101", params={"X-Plex-Token": fake.token},
                     headers={"X-Plex-Client-Identifier": "x"}, timeout=5)
    assert r.status_code == 400
    assert len(fake.violations) == 5
    assert not fake.library.state(fake.token, "101").view_count
    fake.violations.clear()


def test_fake_accepts_the_older_get_forms(fake):
    h = {"X-Plex-Token": fake.token, "X-Plex-Client-Identifier": "x", "Accept": "application/json"}
    r = requests.get(fake.url + "/:/scrobble", params={"identifier": "com.plexapp.plugins.library", "key": "102"},
                     headers=h, timeout=5)
    assert r.status_code == 200 and fake.library.state(fake.token, "102").view_count == 1
    r = requests.get(fake.url + "/:/unscrobble", params={"identifier": "com.plexapp.plugins.library", "key": "102"},
                     headers=h, timeout=5)
    assert r.status_code == 200 and fake.library.state(fake.token, "102").view_count == 0
    assert fake.violations == []


def test_fake_answers_xml_unless_json_is_asked_for(fake):
    r = requests.get(fake.url + "/identity", timeout=5)
    assert r.headers["Content-Type"].startswith("application/xml")
    assert r.text.startswith("<MediaContainer") and 'machineIdentifier="' in r.text


def test_timeline_past_the_watched_threshold_counts_a_view(fake):
    b = backend_for(fake)
    b.apply(change(PROGRESS, position_ms=650_000, duration_ms=660_000))
    state = b.read_state("101")
    assert state.played and state.play_count == 1 and state.position_ms == 0


def test_fake_answers_match_the_spec(fake):
    """The fake's own answers follow the published response schemas, so the client is
    tested against what a real server is documented to send."""
    from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

    from tests.fakes.base import openapi_for
    from tests.fakes.plex import SPEC

    api = openapi_for(SPEC, "/")
    fake.library.set_state(fake.token, "101", view_offset=5000, view_count=2, last_viewed_at=1_700_000_000)
    h = {"X-Plex-Token": fake.token, "X-Plex-Client-Identifier": "x", "Accept": "application/json"}
    checked = 0
    for path, params in [("/identity", {}), ("/", {}), ("/library/sections/all", {}),
                         ("/library/sections/1/all", {"type": 1, "includeGuids": 1,
                                                      "X-Plex-Container-Start": 0, "X-Plex-Container-Size": 2}),
                         ("/library/sections/2/all", {"type": 4}), ("/library/metadata/101", {}),
                         ("/library/metadata/203", {})]:
        resp = requests.get(fake.url + path, params=params, headers=h, timeout=5)
        assert resp.status_code == 200, path
        api.validate_response(RequestsOpenAPIRequest(resp.request), RequestsOpenAPIResponse(resp))
        checked += 1
    assert checked == 7


def test_a_replayed_progress_is_an_offline_timeline_stamped_when_it_happened(fake):
    import time as _time

    backend = backend_for(fake)
    then = int(_time.time()) - 3 * 3600  # queued during an offline spell three hours ago
    backend.apply(change(PROGRESS, position_ms=120_000, duration_ms=660_000, created_at=float(then)))
    q = fake.requests[-1].query
    assert q["offline"] == ["1"] and q["updated"] == [str(then)]
    assert fake.library.state(fake.token, "101").last_viewed_at == then
    backend.apply(change(PROGRESS, position_ms=130_000, duration_ms=660_000, created_at=_time.time()))
    assert "offline" not in fake.requests[-1].query  # a live one is not


def test_a_position_past_the_threshold_then_watched_counts_one_view(fake):
    # A seek into the credits sends progress there (Plex counts the view, as for its own players);
    # the same viewing's watched mark must not count a second one. A later viewing still counts.
    import time as _time

    backend = backend_for(fake)
    now = _time.time()
    backend.apply(change(PROGRESS, position_ms=620_000, duration_ms=660_000, created_at=now))
    backend.apply(change(WATCHED, created_at=now + 20))
    assert fake.library.state(fake.token, "101").view_count == 1
    backend.apply(change(WATCHED, created_at=now + 3600))
    assert fake.library.state(fake.token, "101").view_count == 2
