"""Identification against the real backends over HTTP, talking to the spec-validating fakes."""
from __future__ import annotations

import json

import pytest

from playbacksync.backends.plex import PlexBackend
from playbacksync.config import Config, PathMapping, ServerConfig
from playbacksync.identify import Identifier, ItemIndex, identify_json, identify_report
from playbacksync.tracker.events import MediaRef
from tests.fakes.base import fail_on_spec_violations  # noqa: F401
from tests.fakes.plex import FakePlex
from tests.fakes.plex_state import Item


class Clock:
    def __init__(self, t=1_800_000_000.0):
        self.t = t

    def __call__(self):
        return self.t


@pytest.fixture
def plex():
    with FakePlex() as fake:
        yield fake


def plex_setup(fake, tmp_path, mappings=(PathMapping("/mnt/nas", "/srv/media"),), **kw):
    server = ServerConfig(id="plex", type="plex", url=fake.url, token=fake.token, device_id="dev-1",
                          path_mappings=tuple(mappings), connect_timeout=2.0, read_timeout=3.0)
    backend = PlexBackend(server)
    clock = Clock()
    index = ItemIndex(tmp_path, clock=clock)
    kw.setdefault("miss_wait", 10.0)
    ident = Identifier(Config(servers=(server,)), {"plex": backend}, index, clock=clock, page_size=2, **kw)
    return ident, index, clock, backend


def listings(fake):
    return [r for r in fake.requests if r.path.startswith("/library/sections/") and r.path.endswith("/all")]


def test_plex_path_through_mapping_after_one_paged_refresh(plex, tmp_path):
    ident, index, clock, backend = plex_setup(plex, tmp_path)
    r = ident.identify(MediaRef(path="/mnt/nas/Movies/Movie 1 (2001)/Movie 1.mkv"))
    assert (r["plex"].item_id, r["plex"].method) == ("101", "path")
    assert index.info("plex").item_count == 7  # 3 movies + 4 episodes; the show itself is not playable
    assert len(listings(plex)) >= 4  # paged two at a time
    assert all(r.headers.get("X-Plex-Token") == plex.token for r in listings(plex))
    # the next file is answered from the index, no more requests
    plex.clear_log()
    r = ident.identify(MediaRef(path="/mnt/nas/TV/Show/Season 01/Show - S01E03.mkv"))
    # a lookup: answered from the index alone (its identity was asked by the refresh just now)
    assert (r["plex"].item_id, r["plex"].method) == ("203", "path")
    assert [q.path for q in plex.requests] == []
    # what a write uses is confirmed with the server: one request for that item, no listing
    r = ident.identify(MediaRef(path="/mnt/nas/TV/Show/Season 01/Show - S01E03.mkv"), confirm=True)
    assert (r["plex"].item_id, r["plex"].method) == ("203", "path")
    assert [q.path for q in plex.requests] == ["/library/metadata/203"]
    backend.close()


def test_plex_part_url_and_metadata_url(plex, tmp_path):
    ident, index, clock, backend = plex_setup(plex, tmp_path)
    url = plex.url + "/library/parts/1002/1600000000/file.mkv?X-Plex-Token=" + plex.token
    r = ident.identify(MediaRef(path=url))
    assert (r["plex"].item_id, r["plex"].method) == ("102", "url")
    assert index.item_for_part("plex", "1002") == "102"  # cached for next time
    text = identify_report(r) + json.dumps(identify_json(r))
    assert plex.token not in text
    r = ident.identify(MediaRef(path=plex.url + "/library/metadata/203"))
    assert (r["plex"].item_id, r["plex"].method) == ("203", "url")
    r = ident.identify(MediaRef(path=plex.url + "/library/parts/999999/1/file.mkv"))
    assert r["plex"].item_id is None and "no item with media part 999999" in r["plex"].reason
    backend.close()


def test_plex_url_of_another_plex_never_matches(plex, tmp_path):
    ident, index, clock, backend = plex_setup(plex, tmp_path)
    with FakePlex() as other:
        r = ident.identify(MediaRef(path=other.url + "/library/metadata/101"))
        assert r["plex"].item_id is None and "is not of this server" in r["plex"].reason
        assert other.requests == []
    backend.close()


def test_plex_provider_ids(plex, tmp_path):
    ident, index, clock, backend = plex_setup(plex, tmp_path)
    # no mapping covers the path; the ids miss the empty index, so one refresh runs first
    r = ident.identify(MediaRef(path="/home/me/Downloads/m.mkv", provider_ids={"imdb": "tt2000003"}))
    assert (r["plex"].item_id, r["plex"].method) == ("203", "provider_id")
    assert listings(plex)
    # the show's own tvdb id: shows are not playable, so not in the index
    r = ident.identify(MediaRef(path="/home/me/x.mkv", provider_ids={"tvdb": "70000"}, kind="episode"))
    assert r["plex"].item_id is None and "no episode item with tvdb 70000" in r["plex"].reason
    # a duplicate on the server makes the id ambiguous
    plex.library.add_item(Item(rating_key="150", section="1", type="movie", title="Movie 1 (copy)",
                               duration=660_000, parts=[(1500, "/srv/media/Movies/copy.mkv")],
                               guids=["imdb://tt1000001"]))
    ident.refresh()
    r = ident.identify(MediaRef(path="/home/me/x.mkv", provider_ids={"imdb": "tt1000001"}))
    assert r["plex"].item_id is None and "ambiguous: 2 items share imdb tt1000001" in r["plex"].reason
    backend.close()


def test_plex_new_file_is_found_by_one_refresh_on_miss(plex, tmp_path):
    ident, index, clock, backend = plex_setup(plex, tmp_path)
    ident.refresh()
    plex.library.add_item(Item(rating_key="160", section="1", type="movie", title="New",
                               duration=600_000, parts=[(1600, "/srv/media/Movies/New/New.mkv")]))
    clock.t += 120  # past min_refresh_interval
    plex.clear_log()
    r = ident.identify(MediaRef(path="/mnt/nas/Movies/New/New.mkv"))
    assert (r["plex"].item_id, r["plex"].method) == ("160", "path")
    assert listings(plex)
    # a file the server does not have: one refresh at most per interval, then the reason
    plex.clear_log()
    clock.t += 10
    r = ident.identify(MediaRef(path="/mnt/nas/Movies/Nope.mkv"))
    assert r["plex"].item_id is None and listings(plex) == []
    assert r["plex"].reason == ("/srv/media/Movies/Nope.mkv (mapping /mnt/nas → /srv/media) not in server index "
                                "(refreshed 10 s ago)")
    backend.close()


def test_plex_down_keeps_the_index_and_says_so(plex, tmp_path):
    ident, index, clock, backend = plex_setup(plex, tmp_path)
    ident.refresh()
    plex.go_down()
    clock.t += 3600  # stale: a refresh is tried (and fails) in the background
    r = ident.identify(MediaRef(path="/mnt/nas/Movies/Movie 2 (2002)/Movie 2.mkv"), confirm=True)
    # it may come back as another server (a reinstall is downtime): nothing is written from the old rows
    assert r["plex"].item_id is None and "cannot confirm item 102 with the server" in r["plex"].reason
    # a lookup past the identity's time cannot ask who answers: it names nothing either
    ident.identity_ttl = 0
    r = ident.identify(MediaRef(path="/mnt/nas/Movies/Movie 2 (2002)/Movie 2.mkv"))
    assert r["plex"].item_id is None and "cannot check which server answers" in r["plex"].reason
    assert ident.close(timeout=10)
    err = index.info("plex").last_error
    assert err and plex.token not in err
    assert index.info("plex").item_count == 7  # the rows are kept
    plex.come_back()  # the same server again: its rows answer
    r = ident.identify(MediaRef(path="/mnt/nas/Movies/Movie 2 (2002)/Movie 2.mkv"))
    assert r["plex"].item_id == "102"
    backend.close()


def test_plex_windows_server_paths(plex, tmp_path):
    plex.library.add_section("3", "Win", "movie", r"D:\Media\Films")
    plex.library.add_item(Item(rating_key="170", section="3", type="movie", title="Win",
                               duration=600_000, parts=[(1700, r"D:\Media\Films\Ünïcode Film\Film.MKV")]))
    ident, index, clock, backend = plex_setup(plex, tmp_path, mappings=(PathMapping("/mnt/d", "D:\\Media"),))
    r = ident.identify(MediaRef(path="/mnt/d/films/ünïcode film/film.mkv"))
    assert (r["plex"].item_id, r["plex"].method) == ("170", "path")
    backend.close()


# -- Jellyfin and Emby -------------------------------------------------------------

def mb_setup(fake, backend_cls, server_type, tmp_path, url=None, mappings=()):
    uid = fake.add_user("alice", "pass")
    token = fake.issue_token(uid)
    server = ServerConfig(id=server_type, type=server_type, url=url or fake.url, token=token, user_id=uid,
                          device_id="dev-1", path_mappings=tuple(mappings), connect_timeout=2.0, read_timeout=3.0)
    backend = backend_cls(server)
    clock = Clock()
    index = ItemIndex(tmp_path, clock=clock)
    ident = Identifier(Config(servers=(server,)), {server.id: backend}, index, clock=clock, page_size=2,
                       miss_wait=10.0)
    return ident, index, backend, token


@pytest.mark.parametrize("version", ["10.8.13", "10.11.11"])
def test_jellyfin_url_path_and_ids(tmp_path, version):
    from playbacksync.backends.jellyfin import JellyfinBackend
    from tests.fakes.jellyfin import JellyfinFake

    with JellyfinFake(version=version) as fake:
        matrix = fake.add_item("The Matrix", path=r"D:\Media\Movies\The Matrix (1999)\The Matrix.mkv",
                               provider_ids={"Imdb": "tt0133093", "Tmdb": "603"})
        bunny = fake.add_item("Bunny", path=r"D:\Media\Movies\Bunny.mkv", provider_ids={"Tmdb": "10378"})
        ep = fake.add_item("Pilot", path=r"\\NAS\tv\Show\S01E01.mkv", provider_ids={"Tvdb": "71001"},
                           type="Episode")
        fake.add_item("Show", provider_ids={"Tvdb": "70000"}, type="Series")
        ident, index, backend, token = mb_setup(
            fake, JellyfinBackend, "jellyfin", tmp_path,
            mappings=(PathMapping("/mnt/media", "D:\\Media"), PathMapping("smb://nas/tv", r"\\NAS\tv")))
        # the server's own stream URL: exact, no request needed (ids written the canonical way)
        dashed = "%s-%s-%s-%s-%s" % (matrix[:8], matrix[8:12], matrix[12:16], matrix[16:20], matrix[20:])
        url = fake.url + "/Videos/%s/stream.mkv?Static=true&api_key=%s" % (dashed.upper(), token)
        r = ident.identify(MediaRef(path=url), wait=0)
        assert (r["jellyfin"].item_id, r["jellyfin"].method) == (matrix, "url")
        # a Linux path through the mapping to the Windows server's path (case and separators differ)
        r = ident.identify(MediaRef(path="/mnt/media/movies/the matrix (1999)/The Matrix.mkv"))
        assert (r["jellyfin"].item_id, r["jellyfin"].method) == (matrix, "path")
        assert index.info("jellyfin").item_count == 3  # the series is not a playable item
        # Kodi playing from the share directly
        r = ident.identify(MediaRef(path="smb://nas/tv/Show/S01E01.mkv"))
        assert (r["jellyfin"].item_id, r["jellyfin"].method) == (ep, "path")
        r = ident.identify(MediaRef(path="/elsewhere/b.mkv", provider_ids={"tmdb": "10378"}, kind="movie"))
        assert (r["jellyfin"].item_id, r["jellyfin"].method) == (bunny, "provider_id")
        r = ident.identify(MediaRef(path="/mnt/media2/Movies/Bunny.mkv"))
        assert r["jellyfin"].reason == "no path mapping covers /mnt/media2/Movies/Bunny.mkv"
        assert token not in identify_report(r)
        backend.close()


def test_emby_stream_url_and_path(tmp_path):
    from playbacksync.backends.emby import EmbyBackend
    from tests.fakes.emby import EmbyFake

    with EmbyFake() as fake:
        film = fake.add_item("Film", path="/volume1/video/Film.mkv", provider_ids={"Imdb": "tt0000001"})
        dup1 = fake.add_item("Dup", path="/volume1/video/Dup 1.mkv", provider_ids={"Imdb": "tt0000002"})
        fake.add_item("Dup", path="/volume1/video/Dup 2.mkv", provider_ids={"Imdb": "tt0000002"})
        ident, index, backend, token = mb_setup(
            fake, EmbyBackend, "emby", tmp_path, url=fake.url + "/emby",
            mappings=(PathMapping("/home/me/nas video", "/volume1/video"),))
        for url in (fake.url + "/emby/Videos/%s/stream.mkv?Static=true&api_key=%s" % (film, token),
                    fake.url + "/Videos/%s/original.mkv" % film, fake.url + "/emby/Items/%s/Download" % film):
            r = ident.identify(MediaRef(path=url), wait=0)
            assert (r["emby"].item_id, r["emby"].method) == (film, "url"), url
        r = ident.identify(MediaRef(path="/home/me/nas video/Dup 1.mkv", provider_ids={"imdb": "tt0000002"}))
        assert (r["emby"].item_id, r["emby"].method) == (dup1, "path")
        r = ident.identify(MediaRef(path="/home/me/other/x.mkv", provider_ids={"imdb": "tt0000002"}))
        assert r["emby"].item_id is None and "ambiguous: 2 items share imdb tt0000002" in r["emby"].reason
        backend.close()
