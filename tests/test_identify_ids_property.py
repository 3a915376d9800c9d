"""Provider ids never pick the wrong item, whatever collides (hypothesis, on a real index).

A library draws items of three kinds whose tmdb/tvdb numbers collide across kinds
(as TMDb and TVDB numbers do) but are unique within one, and imdb ids unique
everywhere. The player plays one item (in the library or not) and reports some of
its true ids, with or without its kind, sometimes with its show's id. Whatever it
reports, identification names that item or nothing.
"""
from hypothesis import HealthCheck, given, settings, strategies as st

from playbacksync.backends.base import IndexedItem
from playbacksync.config import Config, ServerConfig
from playbacksync.identify import Identifier, ItemIndex
from playbacksync.tracker.events import MediaRef

KINDS = ("movie", "episode", "series")
SERVER = ServerConfig(id="s", type="jellyfin", url="http://127.0.0.1:1", path_mappings=())


@st.composite
def worlds(draw):
    n = draw(st.integers(2, 12))
    items = []
    used = {k: {"tmdb": set(), "tvdb": set()} for k in KINDS}
    for i in range(n):
        kind = draw(st.sampled_from(KINDS))
        ids = {}
        if draw(st.booleans()):
            ids["imdb"] = "tt%07d" % i
        for provider in ("tmdb", "tvdb"):
            if draw(st.booleans()):
                value = draw(st.integers(1, 6).filter(lambda v, p=provider, k=kind: v not in used[k][p]))
                used[kind][provider].add(value)
                ids[provider] = str(value)
        items.append(IndexedItem("i%d" % i, "Item %d" % i, "", ids, kind=kind))
    playable = [it for it in items if it.kind != "series" and it.provider_ids]
    truth = draw(st.sampled_from(playable)) if playable else None
    in_library = truth is not None and draw(st.booleans())
    if truth is None:
        truth = IndexedItem("absent", "Absent", "", {"tmdb": str(draw(st.integers(1, 6)))}, kind="movie")
    elif not in_library:  # the library lacks it; its numbers may still be another kind's
        items = [it for it in items if it.item_id != truth.item_id]
        ids = dict(truth.provider_ids)
        for p in ("tmdb", "tvdb"):
            if p not in ids and draw(st.booleans()):
                ids[p] = str(draw(st.integers(1, 9).filter(lambda v, p=p: v not in used[truth.kind][p])))
        truth = IndexedItem("absent", "Absent", "", ids, kind=truth.kind)
    given_ids = {p: v for p, v in truth.provider_ids.items() if draw(st.booleans())}
    series = [it for it in items if it.kind == "series" and "tvdb" in it.provider_ids]
    if series and truth.kind == "episode" and draw(st.booleans()):
        given_ids["tvshow.tvdb"] = series[0].provider_ids["tvdb"]
    kind = truth.kind if draw(st.booleans()) else ""
    return items, truth, given_ids, kind


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(world=worlds())
def test_provider_ids_name_the_played_item_or_nothing(tmp_path, world):
    items, truth, given_ids, kind = world
    index = ItemIndex(tmp_path / "data")
    try:
        index.replace("s", items)
        ident = Identifier(Config(servers=(SERVER,)), {}, index, miss_wait=0)
        match = ident.identify_one("s", MediaRef(path="/nowhere/file.mkv", provider_ids=given_ids, kind=kind))
        assert match.item_id in (truth.item_id, None), (match, truth, given_ids, kind)
        assert match.item_id is not None or match.reason
    finally:
        index.close()
