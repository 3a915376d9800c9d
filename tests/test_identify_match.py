"""Identifier decisions on a real index: order of methods, ambiguity, reasons, report.

The index is filled with ``ItemIndex.replace`` (what a refresh does after
fetching); refresh scheduling uses a small class implementing only the
Backend contract's ``iter_items`` (how often and when a refresh runs is the
point there). Identification against the real backends over HTTP is in
test_identify_e2e.py.
"""
import json
import threading
import time

import pytest

from playbacksync.backends.base import IndexedItem, TransientError
from playbacksync.config import Config, PathMapping, ServerConfig
from playbacksync.identify import Identifier, ItemIndex, Match, identify_json, identify_report
from playbacksync.tracker.events import MediaRef

GUID = "a" * 32
JF = ServerConfig(id="jf", type="jellyfin", url="http://127.0.0.1:8096",
                  path_mappings=(PathMapping("/mnt/media", "/srv/media"),))
WIN = ServerConfig(id="emby", type="emby", url="http://127.0.0.1:8920/emby",
                   path_mappings=(PathMapping("/mnt/media", r"D:\Media"),))
PLEX = ServerConfig(id="plex", type="plex", url="http://127.0.0.1:32400")
OFF = ServerConfig(id="off", type="plex", url="http://127.0.0.1:32401", enabled=False)


class Clock:
    def __init__(self, t=2_000_000.0):
        self.t = t

    def __call__(self):
        return self.t


class ListBackend:
    """Only the Backend contract's iter_items (plus get_item), over a list the test changes."""

    def __init__(self, items=(), gate=None):
        self.items = list(items)
        self.walks = 0
        self.gate = gate  # an Event the walk waits for
        self.error = None

    def iter_items(self, page_size=200):
        self.walks += 1
        if self.gate is not None:
            self.gate.wait(10)
        if self.error:
            raise self.error
        yield from list(self.items)

    def get_item(self, item_id):
        return next((i for i in self.items if i.item_id == item_id), None)


@pytest.fixture
def env(tmp_path):
    clock = Clock()
    index = ItemIndex(tmp_path, clock=clock)
    index.replace("jf", [
        IndexedItem("j1", "Film", "/srv/media/Movies/Film (1999)/Film.mkv", {"imdb": "tt0133093", "tmdb": "603"}),
        IndexedItem("j2", "Other", "/srv/media/Movies/Other.mkv", {"imdb": "tt0000002"}),
        IndexedItem("j3", "Dup A", "/srv/media/dup/a.mkv", {"imdb": "tt0000009"}),
        IndexedItem("j4", "Dup B", "/srv/media/dup/b.mkv", {"imdb": "tt0000009"}),
    ])
    index.replace("emby", [
        IndexedItem("e1", "Film", r"D:\Media\Movies\Film (1999)\Film.mkv", {"imdb": "tt0133093"}, kind="movie"),
        IndexedItem("e2", "Ep", r"D:\Media\TV\Show\S01E01.mkv", {"tvdb": "555", "imdb": "tt7"}, kind="episode"),
    ])
    index.replace("plex", [
        IndexedItem("101", "Film", "/data/Film.mkv", {"imdb": "tt0133093", "tmdb": "603"}, kind="movie"),
        IndexedItem("102", "Ep", "/data/S01E01.mkv", {"tvdb": "555"}, kind="episode"),
        IndexedItem("103", "Series-ish", "/data/x.mkv", {"tvdb": "555"}, kind="episode"),
    ])
    config = Config(servers=(JF, WIN, PLEX, OFF))
    ident = Identifier(config, {}, index, clock=clock, miss_wait=0)
    return ident, index, clock


def ident_of(env, path, ids=None, kind=""):
    return env[0].identify(MediaRef(path=path, provider_ids=ids or {}, kind=kind))


def test_local_path_through_each_servers_mapping(env):
    r = ident_of(env, "/mnt/media/Movies/Film (1999)/Film.mkv")
    assert (r["jf"].item_id, r["jf"].method) == ("j1", "path")
    assert (r["emby"].item_id, r["emby"].method) == ("e1", "path")  # Windows server path
    assert r["jf"].reason == "path /srv/media/Movies/Film (1999)/Film.mkv (mapping /mnt/media → /srv/media)"
    assert r["emby"].reason.startswith(r"path D:\Media\Movies\Film (1999)\Film.mkv")
    # Plex has no mappings: it is taken to see this machine's paths, and has no such file
    assert r["plex"].item_id is None and "/mnt/media/Movies/Film (1999)/Film.mkv not in server index" in r["plex"].reason
    assert r["off"] == Match(None, None, "server is disabled in the settings")


def test_component_wise_mapping_and_reason(env):
    r = ident_of(env, "/mnt/media2/Movies/Film (1999)/Film.mkv")
    assert r["jf"] == Match(None, None, "no path mapping covers /mnt/media2/Movies/Film (1999)/Film.mkv")


def test_windows_server_case_and_separators(env):
    r = ident_of(env, "/mnt/media/movies/film (1999)/FILM.mkv")
    assert r["emby"].item_id == "e1"
    assert r["jf"].item_id is None  # the Linux server is case-sensitive


def test_provider_ids_when_no_path_matches(env):
    r = ident_of(env, "/elsewhere/film.mkv", {"imdb": "tt0133093", "tmdb": "603"})
    assert (r["plex"].item_id, r["plex"].method) == ("101", "provider_id")
    assert r["plex"].reason == "imdb tt0133093, tmdb 603"
    assert (r["jf"].item_id, r["jf"].method) == ("j1", "provider_id")


def test_path_wins_over_provider_ids(env):
    r = ident_of(env, "/mnt/media/Movies/Other.mkv", {"tvdb": "1"})
    assert (r["jf"].item_id, r["jf"].method) == ("j2", "path")


def test_player_ids_contradicting_the_path_item_refuse_it(env):
    # the file at that path is "Other" (tt0000002); the player says it plays tt0133093
    r = ident_of(env, "/mnt/media/Movies/Other.mkv", {"imdb": "tt0133093"})
    assert r["jf"].item_id is None
    assert "provider ids disagree: item j2 has imdb tt0000002, the player says tt0133093" in r["jf"].reason


def test_shared_provider_id_is_ambiguous(env):
    r = ident_of(env, "/elsewhere/x.mkv", {"tvdb": "555"}, kind="episode")
    assert r["plex"].item_id is None
    assert r["plex"].reason.endswith("ambiguous: 2 items share tvdb 555")
    r = ident_of(env, "/elsewhere/x.mkv", {"imdb": "tt0000009"})
    assert r["jf"].item_id is None and "ambiguous: 2 items share imdb tt0000009" in r["jf"].reason


def test_contradicting_provider_ids_never_match(env):
    # tvdb alone would be ambiguous on Plex; imdb names 101 but 101 has tmdb 603, not 999
    r = ident_of(env, "/elsewhere/x.mkv", {"imdb": "tt0133093", "tmdb": "999"})
    assert r["plex"].item_id is None and "provider ids disagree" in r["plex"].reason
    # two ids naming two different items (of the kind the player plays)
    r = ident_of(env, "/elsewhere/x.mkv", {"imdb": "tt0133093", "tvdb": "555"}, kind="episode")
    assert r["emby"].item_id is None and "provider ids disagree" in r["emby"].reason


def test_unknown_everything_says_why(env):
    r = ident_of(env, "/mnt/media/Movies/New.mkv", {"imdb": "tt9999999"})
    reason = r["jf"].reason
    assert r["jf"].item_id is None
    assert reason.startswith("/srv/media/Movies/New.mkv (mapping /mnt/media → /srv/media) not in server index; "
                             "no item with imdb tt9999999 (refreshed ")
    assert "no connection to this server is configured" in reason


def test_stream_url_wins_and_other_servers_never_match_it(env):
    url = "http://127.0.0.1:8096/Videos/%s/stream.mkv?Static=true&api_key=SECRETTOKEN" % GUID.upper()
    env[1].remember_check("jf", GUID, "movie")  # the server confirmed the item earlier (cached with the index)
    r = ident_of(env, url)
    assert (r["jf"].item_id, r["jf"].method) == (GUID, "url")
    assert r["emby"] == Match(None, None, "played from the URL of another server (jf)")
    assert r["plex"].item_id is None
    # with provider ids the other servers may still find their own item
    r = ident_of(env, url, {"imdb": "tt0133093"})
    assert (r["plex"].item_id, r["plex"].method) == ("101", "provider_id")
    assert (r["jf"].item_id, r["jf"].method) == (GUID, "url")
    assert all("SECRETTOKEN" not in m.reason for m in r.values())


def test_url_of_unconfigured_server(env):
    url = "http://user:hunter2@10.0.0.5:8096/Videos/%s/stream?api_key=SECRETTOKEN" % GUID
    r = ident_of(env, url)
    assert all(m.item_id is None for m in r.values())
    assert r["jf"].reason == ("URL http://10.0.0.5:8096/Videos/%s/stream is not of this server "
                              "(http://127.0.0.1:8096)" % GUID)
    text = identify_report(r) + json.dumps(identify_json(r))
    assert "SECRETTOKEN" not in text and "hunter2" not in text


def test_url_of_this_server_naming_no_item(env):
    r = ident_of(env, "http://127.0.0.1:8096/web/index.html")
    assert r["jf"].reason == "URL http://127.0.0.1:8096/web/index.html of this server names no playable jellyfin item"


def test_plex_part_from_index_cache(env):
    ident, index, _ = env
    index.remember_part("plex", "77", "101")
    r = ident.identify(MediaRef(path="http://127.0.0.1:32400/library/parts/77/1700000000/file.mkv"))
    assert (r["plex"].item_id, r["plex"].method) == ("101", "url")
    r = ident.identify(MediaRef(path="http://127.0.0.1:32400/library/parts/78/file.mkv"))
    assert r["plex"].item_id is None and "media part 78" in r["plex"].reason


def test_file_url_and_relative_path(env, monkeypatch, tmp_path):
    r = ident_of(env, "file:///mnt/media/Movies/Film%20(1999)/Film.mkv")
    assert r["jf"].item_id == "j1"
    monkeypatch.chdir(tmp_path)
    r = ident_of(env, "Film.mkv")
    assert r["jf"].reason == "no path mapping covers %s/Film.mkv" % tmp_path


def test_odd_inputs_never_raise(env):
    for path in ["", "   ", "\n", "http://", "http://[::1", "smb://", "file://", "C:", "\\\\x", "x" * 10000,
                 "/mnt/media/a\nb.mkv", "http://127.0.0.1:8096/Videos/%00/stream"]:
        r = ident_of(env, path, {"imdb": None, "": "x", "tmdb": 603})
        assert set(r) == {"jf", "emby", "plex", "off"}
        assert all(m.item_id is None or m.method for m in r.values())


def test_undecodable_file_names(env, tmp_path):
    ident, index, _ = env
    odd = "/srv/media/caf\udce9.mkv"  # a Latin-1 name as Python reads it from a UTF-8 system
    index.replace("jf", [IndexedItem("odd", "caf\udce9", odd), IndexedItem("cafe", "café", "/srv/media/café.mkv")])
    r = ident.identify(MediaRef(path="/mnt/media/caf\udce9.mkv"))
    assert r["jf"].item_id == "odd"
    assert ident.identify(MediaRef(path="/mnt/media/café.mkv"))["jf"].item_id == "cafe"
    r = ident.identify(MediaRef(path="/mnt/media2/caf\udce9.mkv"))
    identify_report(r).encode("utf-8")  # printable
    json.dumps(identify_json(r)).encode("utf-8")


def test_tokens_in_any_url_stay_out_of_reasons(env):
    ident, index, _ = env
    r = ident.identify(MediaRef(path="rtmp://user:pw@cdn.example/live/x?token=SECRETTOKEN&api_key=SECRET2"))
    r2 = ident.identify(MediaRef(path="/tmp/x.mkv?api_key=SECRET3"))
    text = identify_report(r) + identify_report(r2)
    assert "SECRETTOKEN" not in text and "SECRET2" not in text and "SECRET3" not in text and "pw@" not in text


def test_report_one_line_per_server_and_json(env):
    r = ident_of(env, "/mnt/media/Movies/Film (1999)/Film.mkv")
    lines = identify_report(r).splitlines()
    assert len(lines) == 4
    assert lines[0] == "jf: item j1 (by path: path /srv/media/Movies/Film (1999)/Film.mkv (mapping /mnt/media → /srv/media))"
    assert lines[3] == "off: not identified: server is disabled in the settings"
    j = json.loads(json.dumps(identify_json(r)))
    assert j["jf"] == {"item_id": "j1", "method": "path", "reason": r["jf"].reason}
    assert j["plex"]["item_id"] is None and j["plex"]["method"] is None
    r = ident_of(env, "/mnt/media/new\nline.mkv")
    assert len(identify_report(r).splitlines()) == 4 and "new\\nline.mkv" in identify_report(r)


# -- refresh scheduling -------------------------------------------------------------

def until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def make(tmp_path, backend, clock=None, **kw):
    clock = clock or Clock()
    index = ItemIndex(tmp_path, clock=clock)
    config = Config(servers=(ServerConfig(id="jf", type="jellyfin", url="http://127.0.0.1:1",
                                          path_mappings=(PathMapping("/mnt", "/srv"),)),))
    return Identifier(config, {"jf": backend}, index, clock=clock, **kw), index, clock


def test_miss_refreshes_once_then_matches(tmp_path):
    backend = ListBackend([IndexedItem("n1", "New", "/srv/new.mkv")])
    ident, index, clock = make(tmp_path, backend, miss_wait=10)
    r = ident.identify(MediaRef(path="/mnt/new.mkv"))  # empty index: refresh, wait, look again
    assert (r["jf"].item_id, r["jf"].method) == ("n1", "path") and backend.walks == 1
    # another miss right after: no second walk within min_refresh_interval
    clock.t += 5
    r = ident.identify(MediaRef(path="/mnt/gone.mkv"))
    assert r["jf"].item_id is None and backend.walks == 1
    assert r["jf"].reason.endswith("not in server index (refreshed 5 s ago)")
    # later, a new file on the server is found by one refresh
    clock.t += 120
    backend.items.append(IndexedItem("n2", "Gone", "/srv/gone.mkv"))
    assert ident.identify(MediaRef(path="/mnt/gone.mkv"))["jf"].item_id == "n2" and backend.walks == 2
    # a hit never refreshes while the index is fresh
    ident.identify(MediaRef(path="/mnt/new.mkv"))
    assert backend.walks == 2


def test_paths_no_mapping_covers_never_refresh(tmp_path):
    backend = ListBackend()
    ident, index, clock = make(tmp_path, backend, miss_wait=10)
    index.replace("jf", [])
    r = ident.identify(MediaRef(path="/home/me/x.mkv"))
    assert r["jf"].reason == "no path mapping covers /home/me/x.mkv" and backend.walks == 0


def test_stale_index_refreshes_in_background_without_waiting(tmp_path):
    gate = threading.Event()
    backend = ListBackend([IndexedItem("old", "N", "/srv/a.mkv")], gate=gate)  # the server confirms "old"
    ident, index, clock = make(tmp_path, backend, max_age=1800)
    index.replace("jf", [IndexedItem("old", "N", "/srv/a.mkv")])
    clock.t += 1801
    t0 = time.monotonic()
    r = ident.identify(MediaRef(path="/mnt/a.mkv"))
    assert time.monotonic() - t0 < 5  # answered from the index while the walk is held
    assert r["jf"].item_id == "old"
    deadline = time.monotonic() + 5
    while backend.walks == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert backend.walks == 1
    backend.items = [IndexedItem("n1", "N", "/srv/a.mkv")]  # the file is another item by the time the walk reads
    gate.set()
    assert until(lambda: index.by_path_key("jf", "/srv/a.mkv") == ["n1"])
    assert ident.close(timeout=5)


def test_wait_zero_never_blocks_but_schedules(tmp_path):
    gate = threading.Event()
    backend = ListBackend([IndexedItem("n1", "N", "/srv/a.mkv")], gate=gate)
    ident, index, clock = make(tmp_path, backend, miss_wait=30)
    t0 = time.monotonic()
    r = ident.identify(MediaRef(path="/mnt/a.mkv"), wait=0)
    assert time.monotonic() - t0 < 5 and r["jf"].item_id is None
    assert "index never refreshed" in r["jf"].reason and "a refresh is running" in r["jf"].reason
    gate.set()
    assert until(lambda: ident.identify(MediaRef(path="/mnt/a.mkv"), wait=0)["jf"].item_id == "n1")
    assert backend.walks == 1
    assert ident.close(timeout=5)


def test_refresh_that_outlasts_the_wait(tmp_path):
    gate = threading.Event()
    backend = ListBackend([IndexedItem("n1", "N", "/srv/a.mkv")], gate=gate)
    ident, index, clock = make(tmp_path, backend, miss_wait=0.2)
    r = ident.identify(MediaRef(path="/mnt/a.mkv"))
    assert r["jf"].item_id is None and "a refresh is running" in r["jf"].reason
    gate.set()
    assert ident.close(timeout=5)


def test_failed_refresh_is_reported_and_not_hammered(tmp_path):
    backend = ListBackend()
    backend.error = TransientError("cannot reach 127.0.0.1:1: connection refused")
    ident, index, clock = make(tmp_path, backend, miss_wait=10)
    r = ident.identify(MediaRef(path="/mnt/a.mkv"))
    assert r["jf"].item_id is None
    assert "index never refreshed; last refresh failed 0 s ago: cannot reach 127.0.0.1:1: connection refused" \
        in r["jf"].reason
    clock.t += 30
    ident.identify(MediaRef(path="/mnt/a.mkv"))
    assert backend.walks == 1  # within min_refresh_interval of the failure
    clock.t += 60
    ident.identify(MediaRef(path="/mnt/a.mkv"))
    assert backend.walks == 2


def test_close_stops_a_long_walk_and_keeps_old_rows(tmp_path):
    class Endless:
        walks = 0

        def iter_items(self, page_size=200):
            i = 0
            while True:
                i += 1
                yield IndexedItem(str(i), "x", "/srv/%d.mkv" % i)

    ident, index, clock = make(tmp_path, Endless())
    index.replace("jf", [IndexedItem("keep", "k", "/srv/k.mkv")])
    assert ident.refresh(wait=True, timeout=0.3) == {"jf": "still running"}
    assert ident.close(timeout=5)
    assert index.by_path_key("jf", "/srv/k.mkv") == ["keep"]


def test_broken_index_never_raises(tmp_path):
    import sqlite3

    backend = ListBackend([IndexedItem("n1", "N", "/srv/a.mkv")])
    ident, index, clock = make(tmp_path, backend, miss_wait=1)
    con = sqlite3.connect(index.path)
    for table in ("items", "meta"):
        con.execute("DROP TABLE %s" % table)
    con.commit()
    r = ident.identify(MediaRef(path="/mnt/a.mkv", provider_ids={"imdb": "tt1"}))
    assert r["jf"].item_id is None and r["jf"].reason.startswith("identification failed: ")
    assert "no such table" in r["jf"].reason
    assert ident.close(timeout=5)


def test_refresh_stale_leaves_a_fresh_index_alone(tmp_path):
    """refresh_stale (used at every player start) walks a server's library only when its index is stale."""
    walks = []

    class Library:
        def iter_items(self, page_size=200):
            walks.append(1)
            return iter(())

    now = [1_000_000.0]
    server = ServerConfig(id="s", type="jellyfin", url="http://127.0.0.1:9")
    index = ItemIndex(str(tmp_path), clock=lambda: now[0])
    ident = Identifier(Config(servers=(server,)), {"s": Library()}, index, clock=lambda: now[0], max_age=1800)
    try:
        ident.refresh_stale()
        deadline = time.monotonic() + 5
        while index.info("s").refreshed_at is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert walks == [1]
        ident.refresh_stale()  # fresh: nothing walks
        time.sleep(0.2)
        assert walks == [1]
        now[0] += 1801
        ident.refresh_stale()
        deadline = time.monotonic() + 5
        while len(walks) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert walks == [1, 1]
    finally:
        ident.close(1)
        index.close()
