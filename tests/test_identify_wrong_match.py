"""The four causes of wrong matches (issue 13), each against the real fakes over HTTP.

Written against ``Identifier.identify`` so each runs on the code before the fix too,
where each of them matched the wrong item (or, for the unique imdb id, threw it away).
"""
import os

from playbacksync.backends.jellyfin import JellyfinBackend
from playbacksync.backends.plex import PlexBackend
from playbacksync.config import Config, PathMapping, ServerConfig
from playbacksync.identify import Identifier, ItemIndex
from playbacksync.tracker.events import MediaRef
from tests.fakes.jellyfin import JellyfinFake
from tests.fakes.plex import FakePlex
from tests.fakes.plex_state import Item


def _plex(fake, tmp_path, mappings=(PathMapping("/mnt/nas", "/srv/media"),)):
    server = ServerConfig(id="plex", type="plex", url=fake.url, token=fake.token, path_mappings=tuple(mappings))
    backend = PlexBackend(server)
    ident = Identifier(Config(servers=(server,)), {"plex": backend}, ItemIndex(tmp_path / "data"), miss_wait=10)
    return ident, backend


def _jellyfin(fake, tmp_path):
    uid = fake.add_user("alice", "pass")
    server = ServerConfig(id="jf", type="jellyfin", url=fake.url, token=fake.issue_token(uid), user_id=uid,
                          path_mappings=(PathMapping("/mnt/media", "/srv/media"),))
    backend = JellyfinBackend(server)
    ident = Identifier(Config(servers=(server,)), {"jf": backend}, ItemIndex(tmp_path / "data"), miss_wait=10)
    return ident, backend


def test_replaced_server_is_not_answered_from_the_old_index(tmp_path):
    with FakePlex() as plex:
        ident, backend = _plex(plex, tmp_path)
        film = MediaRef(path="/mnt/nas/Movies/Movie 1 (2001)/Movie 1.mkv")
        assert ident.identify(film)["plex"].item_id == "101"
        # reinstalled behind the same address: same files, new ids; 101 is now another film
        plex.machine_id = "ffffffffffffffffffffffffffffffff"
        items = dict(plex.library.items)
        plex.library.items.clear()
        for key, item in items.items():
            new_key = {"101": "901", "102": "101"}.get(key, key)
            plex.library.add_item(Item(**{**item.__dict__, "rating_key": new_key}))
        # what a write uses is confirmed with the server at once: never 101
        found = ident.identify(film, confirm=True)["plex"]
        assert found.item_id in ("901", None)  # the new id, or a miss while it refreshes; never 101
        # a lookup asks who answers once its identity is due (identity_ttl; every new process)
        ident.identity_ttl = 0
        found = ident.identify(film)["plex"]
        assert found.item_id in ("901", None)
        assert ident.identify(film, wait=10)["plex"].item_id == "901"
        ident.close()
        backend.close()


def test_tmdb_of_a_movie_never_matches_an_episode_and_series_ids_never_match_movies(tmp_path):
    with JellyfinFake() as fake:
        ep = fake.add_item("Pilot", "/srv/media/TV/S/S01E01.mkv", {"Tmdb": "603", "Tvdb": "81"}, type="Episode")
        fake.add_item("Film", "/srv/media/Movies/Film.mkv", {"Tvdb": "70000"})  # a movie id equal to a series'
        ident, backend = _jellyfin(fake, tmp_path)
        # a movie that is not in the library, with the same tmdb number as the episode
        r = ident.identify(MediaRef(path="/x/The Matrix (1999).mkv", provider_ids={"tmdb": "603"}, kind="movie"))
        assert r["jf"].item_id is None and "no movie item with tmdb 603" in r["jf"].reason
        # an episode whose player gave the show's tvdb id: a movie with that number is not it
        r = ident.identify(MediaRef(path="/x/Some Show - S02E03.mkv", provider_ids={"tvdb": "70000"}))
        assert r["jf"].item_id is None
        # the episode itself, as an episode, matches
        r = ident.identify(MediaRef(path="/x/a.mkv", provider_ids={"tmdb": "603"}, kind="episode"))
        assert r["jf"].item_id == ep
        ident.close()
        backend.close()


def test_unique_imdb_is_kept_when_another_id_is_ambiguous_and_imdb_must_be_on_the_item(tmp_path):
    with JellyfinFake() as fake:
        film = fake.add_item("Film", "/srv/media/Movies/Film.mkv", {"Imdb": "tt0133093", "Tmdb": "603"})
        fake.add_item("Remake", "/srv/media/Movies/Remake.mkv", {"Imdb": "tt0000002", "Tmdb": "603"})
        fake.add_item("No imdb", "/srv/media/Movies/NoImdb.mkv", {"Tmdb": "10378"})
        ident, backend = _jellyfin(fake, tmp_path)
        r = ident.identify(MediaRef(path="/x/a.mkv", provider_ids={"imdb": "tt0133093", "tmdb": "603"},
                                    kind="movie"))
        assert r["jf"].item_id == film
        # the player's imdb id names something the server lacks: the tmdb-only item is not it
        r = ident.identify(MediaRef(path="/x/a.mkv", provider_ids={"imdb": "tt9999999", "tmdb": "10378"},
                                    kind="movie"))
        assert r["jf"].item_id is None and "no imdb id to confirm tt9999999" in r["jf"].reason
        ident.close()
        backend.close()


def test_item_ids_from_stream_urls_are_checked_with_the_server(tmp_path):
    with JellyfinFake() as fake:
        series = fake.add_item("Show", provider_ids={"Tvdb": "70000"}, type="Series")
        movie = fake.add_item("Film", "/srv/media/Movies/Film.mkv")
        ident, backend = _jellyfin(fake, tmp_path)
        r = ident.identify(MediaRef(path=fake.url + "/Videos/%s/stream" % series))
        assert r["jf"].item_id is None and "not a playable item" in r["jf"].reason
        unknown = "1" * 32
        r = ident.identify(MediaRef(path=fake.url + "/Videos/%s/stream" % unknown))
        assert r["jf"].item_id is None and "has no item %s" % unknown in r["jf"].reason
        r = ident.identify(MediaRef(path=fake.url + "/Videos/%s/stream" % movie))
        assert r["jf"].item_id == movie
        ident.close()
        backend.close()


def test_dot_dot_through_a_symlink_is_resolved_as_the_os_does(tmp_path):
    real = tmp_path / "real"
    for show in ("ShowA", "ShowB"):
        (real / show / "Season 01").mkdir(parents=True)
        (real / show / "Season 01" / "ep.mkv").write_bytes(b"")
    os.symlink(real / "ShowB" / "Season 01", real / "ShowA" / "Extras")
    with FakePlex(seed=False) as plex:
        plex.library.add_section("2", "TV", "show", "/srv/tv")
        for key, show in (("401", "ShowA"), ("402", "ShowB")):
            plex.library.add_item(Item(rating_key=key, section="2", type="episode", title=show, duration=60_000,
                                       parts=[(int(key) * 10, "/srv/tv/%s/Season 01/ep.mkv" % show)]))
        ident, backend = _plex(plex, tmp_path, mappings=(PathMapping(str(real), "/srv/tv"),))
        # the kernel opens ShowB's episode: Extras is ShowB/Season 01, and .. leads to ShowB
        r = ident.identify(MediaRef(path=str(real / "ShowA" / "Extras" / ".." / "Season 01" / "ep.mkv")))
        assert r["plex"].item_id == "402"
        ident.close()
        backend.close()


def test_settings_pointing_a_server_id_at_another_server_drop_its_old_index(tmp_path):
    with FakePlex() as first, FakePlex(seed=False) as second:
        ident, backend = _plex(first, tmp_path)
        film = MediaRef(path="/mnt/nas/Movies/Movie 1 (2001)/Movie 1.mkv")
        assert ident.identify(film)["plex"].item_id == "101"
        ident.close()
        backend.close()
        # the settings now name another Plex under the same id: same files, other keys
        second.machine_id = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
        second.token = first.token
        second.library.add_user(first.token, "owner")
        second.library.add_section("1", "Movies", "movie", "/srv/media/Movies")
        second.library.add_item(Item(rating_key="101", section="1", type="movie", title="Another film",
                                     duration=600_000, parts=[(1, "/srv/media/Movies/Another/Another.mkv")]))
        second.library.add_item(Item(rating_key="555", section="1", type="movie", title="Movie 1",
                                     duration=600_000, parts=[(2, "/srv/media/Movies/Movie 1 (2001)/Movie 1.mkv")]))
        ident, backend = _plex(second, tmp_path)  # same index file, as after a settings reload
        assert ident.identify(film, wait=0)["plex"].item_id in ("555", None)
        assert ident.identify(film, wait=10)["plex"].item_id == "555"
        ident.close()
        backend.close()


def test_player_ids_that_contradict_a_stream_urls_item_refuse_it_and_nothing_else_is_tried(tmp_path):
    """The URL names the streamed item; the player says it is another film (its imdb names one in
    the library): no guess either way."""
    with JellyfinFake() as fake:
        matrix = fake.add_item("The Matrix", "/srv/media/Movies/Matrix.mkv", {"Imdb": "tt0133093"})
        fake.add_item("Other", "/srv/media/Movies/Other.mkv", {"Imdb": "tt0000001"})
        ident, backend = _jellyfin(fake, tmp_path)
        url = fake.url + "/Videos/%s/stream" % matrix
        for confirm in (True, False):
            r = ident.identify(MediaRef(path=url, provider_ids={"imdb": "tt0000001"}), confirm=confirm)
            assert r["jf"].item_id is None and "disagree" in r["jf"].reason, r
            # the same URL with the streamed item's own ids, or none, is that item
            assert ident.identify(MediaRef(path=url, provider_ids={"imdb": "tt0133093"}),
                                  confirm=confirm)["jf"].item_id == matrix
            assert ident.identify(MediaRef(path=url), confirm=confirm)["jf"].item_id == matrix
        ident.close()
        backend.close()
