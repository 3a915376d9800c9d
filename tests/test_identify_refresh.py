"""Incremental refreshes against the real fakes: few requests, changes seen, deletions caught."""
import time

import pytest

from playbacksync.backends import make_backend
from playbacksync.backends.jellyfin import JellyfinBackend
from playbacksync.backends.plex import PlexBackend
from playbacksync.config import Config, PathMapping, ServerConfig
from playbacksync.identify import Identifier, ItemIndex
from playbacksync.tracker.events import MediaRef
from tests.fakes.emby import EmbyFake
from tests.fakes.jellyfin import JellyfinFake
from tests.fakes.plex import FakePlex
from tests.fakes.plex_state import Item


def _listings(fake):
    return [r for r in fake.requests if r.path.endswith("/Items")
            or (r.path.endswith("/all") and r.path != "/library/sections/all")]


@pytest.mark.parametrize("kind", ["jellyfin", "emby"])
def test_jellyfin_and_emby_incremental_refresh_sees_changes_in_few_requests(tmp_path, kind):
    with (JellyfinFake() if kind == "jellyfin" else EmbyFake()) as fake:
        uid = fake.add_user("alice", "pass")
        old = time.time() - 86400
        ids = [fake.add_item("F%d" % n, "/srv/media/F%d.mkv" % n, {"Imdb": "tt%07d" % n}) for n in range(30)]
        for iid in ids:
            fake.items[iid].saved_at = old  # scanned yesterday
        server = ServerConfig(id="jf", type=kind, url=fake.url, token=fake.issue_token(uid), user_id=uid,
                              path_mappings=(PathMapping("/mnt/media", "/srv/media"),))
        backend = make_backend(server)
        seen = []
        ident = Identifier(Config(servers=(server,)), {"jf": backend}, ItemIndex(tmp_path), page_size=10,
                           on_progress=seen.append)
        assert ident.refresh() == {"jf": None}
        assert seen and seen[-1].mode == "full" and seen[-1].done == 30
        fake.update_item(ids[3], path="/srv/media/F3 (new cut).mkv")
        fake.clear_log()
        assert ident.refresh() == {"jf": None}
        assert len(fake.requests) <= 5 and seen[-1].mode == "incremental"
        # the filter names both dates: alone, minDateLastSaved matches nothing on Jellyfin 10.8-10.10
        # (and in Emby's last open source, see the fakes)
        both, alone = fake.qname("minDateLastSavedForUser"), fake.qname("minDateLastSaved")
        changed = [r for r in _listings(fake) if both in r.query]
        assert changed and changed[0].query.get(alone) == changed[0].query[both]
        r = ident.identify(MediaRef(path="/mnt/media/F3 (new cut).mkv"))
        assert r["jf"].item_id == ids[3]
        r = ident.identify(MediaRef(path="/mnt/media/F3.mkv"), wait=0)
        assert r["jf"].item_id is None  # the old name is gone with the item's old row
        # a deleted item: the count differs, so the refresh walks the whole library
        fake.remove_item(ids[5])
        fake.clear_log()
        assert ident.refresh() == {"jf": None}
        assert seen[-1].mode == "full" and ident.index.get("jf", ids[5]) is None
        ident.close()
        backend.close()


def _plex_refreshed_then_a_new_film(plex, tmp_path):
    """An identifier over the Plex fake, refreshed once; then the server gains a film."""
    server = ServerConfig(id="plex", type="plex", url=plex.url, token=plex.token,
                          path_mappings=(PathMapping("/mnt/nas", "/srv/media"),))
    backend = PlexBackend(server)
    seen = []
    ident = Identifier(Config(servers=(server,)), {"plex": backend}, ItemIndex(tmp_path), on_progress=seen.append)
    assert ident.refresh() == {"plex": None}
    plex.library.add_item(Item(rating_key="160", section="1", type="movie", title="New", duration=600_000,
                               parts=[(1600, "/srv/media/Movies/New.mkv")], added_at=1_700_000_000))
    return ident, backend, seen


def test_a_server_refusing_the_filter_still_gets_a_whole_walk(tmp_path):
    with FakePlex() as plex:
        ident, backend, seen = _plex_refreshed_then_a_new_film(plex, tmp_path)
        plex.refuse_filters = True
        assert ident.refresh() == {"plex": None}
        assert seen[-1].mode == "full"
        assert ident.identify(MediaRef(path="/mnt/nas/Movies/New.mkv"))["plex"].item_id == "160"
        ident.close()
        backend.close()


def test_plex_incremental_refresh_per_section(tmp_path):
    with FakePlex() as plex:
        ident, backend, seen = _plex_refreshed_then_a_new_film(plex, tmp_path)
        plex.clear_log()
        assert ident.refresh() == {"plex": None}
        assert len(plex.requests) <= 5 and seen[-1].mode == "incremental"
        # movies filter on their own field, episodes of a show library on "episode.updatedAt"
        assert sorted(k for r in _listings(plex) for k in r.query if k.endswith("updatedAt>>")) == [
            "episode.updatedAt>>", "updatedAt>>"]
        assert ident.identify(MediaRef(path="/mnt/nas/Movies/New.mkv"))["plex"].item_id == "160"
        ident.close()
        backend.close()
