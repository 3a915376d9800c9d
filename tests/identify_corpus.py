"""A corpus of identification cases against the real fakes over loopback HTTP.

``build_world(tmp_path)`` starts a Jellyfin, an Emby and two Plex fakes, seeds
libraries whose ids collide on purpose (tmdb 603 is a movie and an episode,
tvdb 70000 a series and an episode of another show), lays out real symlinks in
``tmp_path``, and returns the configured servers, their backends and
``cases()``: each case names one server, what the player reports
(``MediaRef``) and the item it must resolve to, or None (a miss, with the
words its reason must hold).

Categories: url (stream URLs as the clients build them, also behind a reverse
proxy's base path), path (mappings and near misses), ids (provider ids and
kinds), replaced (another server behind the same address), multi (parts and
versions), symlink, windows (Windows, UNC and SMB forms).

A reverse proxy is modelled by configuring the server with the proxy's URL
(``http://host:port/jellyfin``) while its backend talks to the fake directly:
what identification reads from the URL is the same, and the fakes serve no
base path themselves.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional
from urllib.parse import quote

from playbacksync.config import PathMapping, ServerConfig
from playbacksync.tracker.events import MediaRef
from tests.fakes.emby import EmbyFake
from tests.fakes.jellyfin import JellyfinFake
from tests.fakes.plex import FakePlex
from tests.fakes.plex_state import Item

CATEGORIES = ("url", "path", "ids", "replaced", "multi", "symlink", "windows")


@dataclass(frozen=True)
class Case:
    name: str
    category: str
    server_id: str
    media: MediaRef
    expect: Optional[str]  # the item id, or None: must not match
    reason_has: str = ""  # a miss's reason must hold this


@dataclass
class World:
    servers: List[ServerConfig]
    backends: Dict[str, object]
    fakes: list
    cases: List[Case] = field(default_factory=list)
    replace_plex2: object = None  # call to put another Plex behind plex2's address

    def close(self):
        for b in self.backends.values():
            b.close()
        for f in self.fakes:
            f.stop()


def _dashed(guid: str) -> str:
    return "%s-%s-%s-%s-%s" % (guid[:8], guid[8:12], guid[12:16], guid[16:20], guid[20:])


def build_world(tmp_path) -> World:
    from playbacksync.backends.emby import EmbyBackend
    from playbacksync.backends.jellyfin import JellyfinBackend
    from playbacksync.backends.plex import PlexBackend

    jf, emby, plex, plex2 = JellyfinFake().start(), EmbyFake().start(), FakePlex().start(), FakePlex().start()
    cases: List[Case] = []

    def add(name, category, server_id, expect, path="", ids=None, kind="", reason_has=""):
        cases.append(Case(name, category, server_id, MediaRef(path=path, provider_ids=dict(ids or {}), kind=kind),
                          expect, reason_has))

    # -- Jellyfin: a Linux server --------------------------------------------------------------
    uid = jf.add_user("alice", "pass")
    jtoken = jf.issue_token(uid)
    J = {
        "matrix": jf.add_item("The Matrix", "/srv/media/Movies/The Matrix (1999)/The Matrix.mkv",
                              {"Imdb": "tt0133093", "Tmdb": "603"},
                              extra_paths=["/srv/media/Movies/The Matrix (1999)/The Matrix - 2160p.mkv"]),
        "bunny": jf.add_item("Bunny", "/srv/media/Movies/Bunny (2008)/Bunny.mkv", {"Tmdb": "10378"}),
        "film2": jf.add_item("Film", "/srv/media/Movies2/Film (2001)/Film.mkv", {"Imdb": "tt0000101", "Tmdb": "700"}),
        "pilot": jf.add_item("Pilot", "/srv/media/TV/Show/Season 01/Show - S01E01.mkv",
                             {"Tvdb": "71001", "Tmdb": "603", "Imdb": "tt2000001"}, type="Episode"),
        "second": jf.add_item("Second", "/srv/media/TV/Show/Season 01/Show - S01E02.mkv",
                              {"Tvdb": "70000", "Tmdb": "900"}, type="Episode"),
        "cafe": jf.add_item("Café", "/srv/media/TV/Café/Season 01/Café - S01E01.mkv", {"Tvdb": "72001"},
                            type="Episode"),
        "quote": jf.add_item("Quote", "/srv/media/Movies/Don't \"Quote\" (2010)/Quote.mkv", {"Imdb": "tt0000777"}),
        # a stacked file: Path is part 1, the others only through /Videos/{id}/AdditionalParts
        "stacked": jf.add_item("Stacked", "/srv/media/Movies/Stacked (1995)/Stacked cd1.avi", {"Imdb": "tt0000888"},
                               parts=["/srv/media/Movies/Stacked (1995)/Stacked cd2.avi",
                                      "/srv/media/Movies/Stacked (1995)/Stacked cd3.avi"]),
    }
    j_series = jf.add_item("Other Show", provider_ids={"Tvdb": "70000", "Tmdb": "1399"}, type="Series")
    jf_server = ServerConfig(id="jf", type="jellyfin", url=jf.url, token=jtoken, user_id=uid, device_id="d",
                             path_mappings=(PathMapping("/mnt/media", "/srv/media"),))
    jfp_server = ServerConfig(id="jfp", type="jellyfin", url=jf.url + "/jellyfin", token=jtoken, user_id=uid,
                              device_id="d")

    # -- Emby: a Windows server with a share -------------------------------------------------------
    euid = emby.add_user("alice", "pass")
    etoken = emby.issue_token(euid)
    E = {
        "matrix": emby.add_item("The Matrix", r"D:\Media\Movies\The Matrix (1999)\The Matrix.mkv",
                                {"Imdb": "tt0133093", "Tmdb": "603"}),
        "amelie": emby.add_item("Amélie", r"D:\Media\Movies\Amélie (2001)\Amélie.mkv",
                                {"Imdb": "tt0211915", "Tmdb": "194"},
                                extra_paths=[r"D:\Media\Movies\Amélie (2001)\Amélie - Director's Cut.mkv"]),
        "pilot": emby.add_item("Pilot", r"\\NAS\tv\Show\Season 01\Show - S01E01.mkv",
                               {"Tvdb": "71001", "Tmdb": "603"}, type="Episode"),
        "second": emby.add_item("Second", r"\\NAS\tv\Show\Season 01\Show - S01E02.mkv", {"Tvdb": "71002"},
                                type="Episode"),
        "stacked": emby.add_item("Stacked", r"D:\Media\Movies\Stacked (1995)\Stacked - part1.mkv",
                                 parts=[r"D:\Media\Movies\Stacked (1995)\Stacked - part2.mkv"]),
    }
    e_series = emby.add_item("Show", provider_ids={"Tvdb": "70000"}, type="Series")
    emby_server = ServerConfig(id="emby", type="emby", url=emby.url + "/emby", token=etoken, user_id=euid,
                               device_id="d", path_mappings=(
                                   PathMapping("/mnt/media", r"D:\Media"), PathMapping("smb://nas/tv", r"\\NAS\tv"),
                                   PathMapping("/mnt/tv", "//NAS/tv")))
    embyp_server = ServerConfig(id="embyp", type="emby", url=emby.url + "/media/emby", token=etoken, user_id=euid,
                                device_id="d")

    # -- Plex: seeded movies 101-103 (parts 1001-1003), show 200, episodes 201-204 (parts 1004-1007) ----
    plex.library.add_item(Item(rating_key="300", section="1", type="movie", title="Long", duration=7_200_000,
                               parts=[(3001, "/srv/media/Movies/Long (1990)/Long cd1.avi"),
                                      (3002, "/srv/media/Movies/Long (1990)/Long cd2.avi")],
                               versions=[[(3003, "/srv/media/Movies/Long (1990)/Long 1080p.mkv")]],
                               guids=["imdb://tt0099999", "tmdb://603"]))
    plex.library.add_item(Item(rating_key="301", section="1", type="movie", title="Same tmdb", duration=600_000,
                               parts=[(3011, "/srv/media/Movies/Same (1991)/Same.mkv")],
                               guids=["imdb://tt0099998", "tmdb://603"]))
    plex.library.add_item(Item(rating_key="401", section="2", type="episode", title="A1", duration=1_200_000,
                               show_title="ShowA", parts=[(4001, "/srv/media/TV/ShowA/Season 01/ep.mkv")],
                               guids=["tvdb://70000"]))
    plex.library.add_item(Item(rating_key="402", section="2", type="episode", title="B1", duration=1_200_000,
                               show_title="ShowB", parts=[(4002, "/srv/media/TV/ShowB/Season 01/ep.mkv")],
                               guids=["tvdb://80001"]))
    plex.library.add_item(Item(rating_key="403", section="1", type="movie", title="Case", duration=600_000,
                               parts=[(4003, "/srv/media/Movies/Case (2000)/Case.mkv")]))
    plex_server = ServerConfig(id="plex", type="plex", url=plex.url, token=plex.token, device_id="d",
                               path_mappings=(PathMapping("/mnt/nas", "/srv/media"),
                                              PathMapping("/mnt/ci", "/srv/media/Movies", ignore_case=True)))
    host, port = plex.url.rsplit(":", 1)
    plexp_server = ServerConfig(id="plexp", type="plex", url="%s:%s/plex" % (host, port), token=plex.token,
                                device_id="d")

    # -- symlinks: a local library reached through links ---------------------------------------------
    real = tmp_path / "real"
    for rel in ("Movies/Movie 1 (2001)/Movie 1.mkv", "TV/ShowA/Season 01/ep.mkv", "TV/ShowB/Season 01/ep.mkv",
                "TV/Show/Season 01/Show - S01E01.mkv", "Movies/Long (1990)/Long cd2.avi"):
        (real / rel).parent.mkdir(parents=True, exist_ok=True)
        (real / rel).write_bytes(b"")
    nas = tmp_path / "nas"
    os.symlink(real, nas)  # the mapping's local side is a symlink
    os.symlink(real / "TV/ShowB/Season 01", real / "TV/ShowA/Extras")  # a link into another show
    os.symlink(real / "Movies/Movie 1 (2001)", real / "Movies/Favourite")  # a link the server never saw
    plexsym_server = ServerConfig(id="plexsym", type="plex", url=plex.url, token=plex.token, device_id="d",
                                  path_mappings=(PathMapping(str(nas), "/srv/media"),))

    # -- plex2: replaced by another Plex later ----------------------------------------------------
    plex2_server = ServerConfig(id="plex2", type="plex", url=plex2.url, token=plex2.token, device_id="d",
                                path_mappings=(PathMapping("/mnt/nas", "/srv/media"),))

    def replace_plex2():
        """A reinstall: same files, new machine id, new rating keys (old keys now name other films)."""
        plex2.machine_id = "0123456789abcdef0123456789abcdef"
        old = dict(plex2.library.items)
        plex2.library.items.clear()
        movies = sorted((i for i in old.values() if i.type == "movie"), key=lambda i: i.rating_key)
        for n, item in enumerate(movies):  # 101 now names what was 102, and so on
            new_key = movies[(n - 1) % len(movies)].rating_key
            plex2.library.add_item(Item(**{**item.__dict__, "rating_key": new_key,
                                           "parts": [(p + 100, f) for p, f in item.parts]}))
        for item in old.values():
            if item.type != "movie":
                plex2.library.add_item(Item(**{**item.__dict__, "rating_key": str(int(item.rating_key) + 1000),
                                               "parts": [(p + 100, f) for p, f in item.parts]}))

    servers = [jf_server, jfp_server, emby_server, embyp_server, plex_server, plexp_server, plexsym_server,
               plex2_server]
    backends = {"jf": JellyfinBackend(jf_server), "jfp": JellyfinBackend(jf_server),
                "emby": EmbyBackend(emby_server), "embyp": EmbyBackend(emby_server),
                "plex": PlexBackend(plex_server), "plexp": PlexBackend(plex_server),
                "plexsym": PlexBackend(plexsym_server), "plex2": PlexBackend(plex2_server)}
    world = World(servers, backends, [jf, emby, plex, plex2], cases, replace_plex2)

    # ======================= cases ================================================================
    # -- url: Jellyfin ---------------------------------------------------------------------------
    def jf_urls(base, iid):
        d = _dashed(iid)
        return [base + "/Videos/%s/stream" % iid, base + "/Videos/%s/stream.mkv?Static=true&api_key=%s" % (iid, jtoken),
                base + "/Videos/%s/stream?static=true&MediaSourceId=%s" % (d.upper(), iid),
                base + "/videos/%s/master.m3u8?VideoCodec=h264" % iid, base + "/Videos/%s/main.m3u8" % d,
                base + "/Videos/%s/hls1/main/0.ts" % iid, base + "/Items/%s/Download?api_key=%s" % (iid, jtoken),
                base + "/Items/%s/File" % d]

    for key, iid in J.items():
        for n, url in enumerate(jf_urls(jf.url, iid)):
            add("jf url %s #%d" % (key, n), "url", "jf", iid, url)
        for n, url in enumerate(jf_urls(jf.url + "/jellyfin", iid)[:4]):
            add("jf proxied url %s #%d" % (key, n), "url", "jfp", iid, url)
    for n, url in enumerate(jf_urls(jf.url, j_series)[:4]):
        add("jf url of a series #%d" % n, "url", "jf", None, url, reason_has="not a playable item")
    unknown = "0" * 31 + "1"
    for n, url in enumerate(jf_urls(jf.url, unknown)[:3]):
        add("jf url of an unknown item #%d" % n, "url", "jf", None, url, reason_has="has no item")
    for n, url in enumerate([jf.url + "/Videos/%s/Subtitles/0/Stream.srt" % J["matrix"],
                             jf.url + "/Videos/%s/Trickplay/320/0.jpg" % J["matrix"],
                             jf.url + "/Items/%s/Images/Primary" % J["matrix"], jf.url + "/web/index.html"]):
        add("jf url naming no stream #%d" % n, "url", "jf", None, url, reason_has="names no playable")
    mx = J["matrix"]
    add("jf url, ApiKey (10.9+ spelling) in the query", "url", "jf", mx,
        jf.url + "/Videos/%s/stream?ApiKey=%s&static=true" % (mx, jtoken))
    add("jf url with user:password in the authority", "url", "jf", mx,
        jf.url.replace("http://", "http://bob:secretpw@") + "/Videos/%s/stream" % mx)
    add("jf url, the streamed item's own imdb", "url", "jf", mx, jf.url + "/Videos/%s/stream" % mx,
        ids={"imdb": "tt0133093"})
    add("jf url, the player's imdb names another film", "url", "jf", None, jf.url + "/Videos/%s/stream" % mx,
        ids={"imdb": "tt0000777"}, reason_has="disagree")
    add("jf url, the player says episode, the item is a movie", "url", "jf", None,
        jf.url + "/Videos/%s/stream" % mx, kind="episode", reason_has="the player plays a episode")
    add("jf url, localhost for 127.0.0.1 (another origin)", "url", "jf", None,
        jf.url.replace("127.0.0.1", "localhost") + "/Videos/%s/stream" % mx, reason_has="not of this server")
    add("jf url of a server id one digit off", "url", "jf", None, jf.url + "/Videos/%s/stream" % (mx[:-1] + (
        "0" if mx[-1] != "0" else "1")), reason_has="has no item")
    add("jf url of an unknown item, the player's imdb names a film in the library", "url", "jf", None,
        jf.url + "/Videos/%s/stream" % ("0" * 31 + "2"), ids={"imdb": "tt0133093"}, reason_has="has no item")
    add("plex part url of an unknown part, the player's imdb names a film in the library", "url", "plex", None,
        plex.url + "/library/parts/999999/file.mkv", ids={"imdb": "tt0133093"}, reason_has="no item with media part")
    add("jf url under the proxy's path, server without it", "url", "jf", None,
        jf.url + "/jellyfin/Videos/%s/stream" % J["matrix"], reason_has="URL of another server (jfp)")

    # -- url: Emby ---------------------------------------------------------------------------
    def emby_urls(base, iid):
        return [base + "/emby/Videos/%s/stream.mkv?Static=true&api_key=%s" % (iid, etoken),
                base + "/Videos/%s/original.mkv" % iid, base + "/emby/Items/%s/Download" % iid,
                base + "/emby/videos/%s/master.m3u8?MediaSourceId=%s" % (iid, iid), base + "/Videos/%s/stream" % iid]

    for key, iid in E.items():
        for n, url in enumerate(emby_urls(emby.url, iid)):
            add("emby url %s #%d" % (key, n), "url", "emby", iid, url)
        for n, url in enumerate(emby_urls(emby.url + "/media", iid)[:3]):
            add("emby proxied url %s #%d" % (key, n), "url", "embyp", iid, url)
    for n, url in enumerate(emby_urls(emby.url, e_series)[:3]):
        add("emby url of a series #%d" % n, "url", "emby", None, url, reason_has="not a playable item")
    add("emby url of an unknown item", "url", "emby", None, emby.url + "/emby/Videos/999999/stream.mkv",
        reason_has="has no item")

    # -- url: Plex --------------------------------------------------------------------------------
    add("plex transcode url with two path= naming different items", "url", "plex", None,
        plex.url + "/video/:/transcode/universal/start.m3u8?path=%s&path=%s" % (
            quote("/library/metadata/101", safe=""), quote("/library/metadata/102", safe="")),
        reason_has="names no playable")
    add("plex transcode url with path= encoded twice", "url", "plex", None,
        plex.url + "/video/:/transcode/universal/start.m3u8?path=" + quote(quote("/library/metadata/101", safe=""),
                                                                          safe=""), reason_has="names no playable")
    add("plex part url with download=1 and a token", "url", "plex", "101",
        plex.url + "/library/parts/1001/1600000000/file.mkv?download=1&X-Plex-Token=" + plex.token)
    add("plex url naming a show's children", "url", "plex", None, plex.url + "/library/metadata/200/children",
        reason_has="names no playable")
    def plex_urls(base, key, part):
        inner = "/library/metadata/%s" % key
        return [base + inner, base + "/library/parts/%d/1600000000/file.mkv" % part,
                base + "/library/parts/%d/file.mkv" % part,
                base + "/video/:/transcode/universal/start.m3u8?path=%s&mediaIndex=0" % quote(inner, safe=""),
                base + "/video/:/transcode/universal/start.m3u8?path=%s" % quote("http://127.0.0.1:32400" + inner,
                                                                                  safe=""),
                base + "/video/:/transcode/universal/start.mpd?path=%s&X-Plex-Token=%s" % (
                    quote("http://10.0.0.2:32400" + inner, safe=""), plex.token)]

    plex_items = [("101", 1001), ("102", 1002), ("103", 1003), ("201", 1004), ("202", 1005), ("204", 1007),
                  ("300", 3001), ("401", 4001)]
    for key, part in plex_items:
        for n, url in enumerate(plex_urls(plex.url, key, part)):
            add("plex url %s #%d" % (key, n), "url", "plex", key, url)
        for n, url in enumerate(plex_urls(plexp_server.url, key, part)[:4]):
            add("plex proxied url %s #%d" % (key, n), "url", "plexp", key, url)
    for n, url in enumerate(plex_urls(plex.url, "200", 999)[:1] + plex_urls(plex.url, "200", 999)[3:]):
        add("plex url of the show #%d" % n, "url", "plex", None, url, reason_has="not a playable item")
    add("plex url of an unknown key", "url", "plex", None, plex.url + "/library/metadata/987654",
        reason_has="has no item")
    add("plex url of an unknown part", "url", "plex", None, plex.url + "/library/parts/987654/1/file.mkv",
        reason_has="media part 987654")
    add("plex url of another server's address", "url", "plex", None, "http://10.9.9.9:32400/library/metadata/101",
        reason_has="not of this server")
    add("plex transcode with an image path", "url", "plex", None,
        plex.url + "/photo/:/transcode?url=%s" % quote("/library/metadata/101/thumb/1", safe=""),
        reason_has="names no playable")

    # -- path: Jellyfin through its mapping, and near misses ---------------------------------------------
    jpaths = {"matrix": "Movies/The Matrix (1999)/The Matrix.mkv", "bunny": "Movies/Bunny (2008)/Bunny.mkv",
              "film2": "Movies2/Film (2001)/Film.mkv", "pilot": "TV/Show/Season 01/Show - S01E01.mkv",
              "second": "TV/Show/Season 01/Show - S01E02.mkv", "cafe": "TV/Café/Season 01/Café - S01E01.mkv",
              "quote": "Movies/Don't \"Quote\" (2010)/Quote.mkv"}
    for key, rel in jpaths.items():
        add("jf path %s" % key, "path", "jf", J[key], "/mnt/media/" + rel)
        add("jf path %s, dots and doubled slashes" % key, "path", "jf", J[key],
            "/mnt/media/./" + rel.replace("/", "//", 1))
        add("jf path %s, file URL" % key, "path", "jf", J[key], "file://" + quote("/mnt/media/" + rel))
        add("jf near miss %s: sibling folder sharing the prefix" % key, "path", "jf", None,
            "/mnt/media2/" + rel, reason_has="no path mapping covers")
        add("jf near miss %s: other case on a Linux server" % key, "path", "jf", None,
            "/mnt/media/" + rel.upper(), reason_has="not in server index")
        add("jf near miss %s: other extension" % key, "path", "jf", None,
            "/mnt/media/" + rel.rsplit(".", 1)[0] + ".avi", reason_has="not in server index")
        add("jf near miss %s: trailing space" % key, "path", "jf", None,
            "/mnt/media/" + rel + " ", reason_has="not in server index")
    import unicodedata
    add("jf path in NFD (macOS) form", "path", "jf", J["cafe"], unicodedata.normalize("NFD", "/mnt/media/" + jpaths["cafe"]))
    add("jf near miss: Movies vs Movies2", "path", "jf", None, "/mnt/media/Movies/Film (2001)/Film.mkv",
        reason_has="not in server index")
    # odd forms of the same file, and near misses a decoder could make
    bunny = "/mnt/media/" + jpaths["bunny"]
    add("jf path, file://localhost URL", "path", "jf", J["bunny"], "file://localhost" + quote(bunny))
    add("jf path, file URL with every reserved character encoded", "path", "jf", J["bunny"],
        "file://" + quote(bunny, safe="/"))
    add("jf near miss: file URL encoded twice", "path", "jf", None, "file://" + quote(quote(bunny)),
        reason_has="not in server index")
    add("jf near miss: a plain path is never URL-decoded", "path", "jf", None, bunny.replace(" ", "%20"),
        reason_has="not in server index")
    add("jf near miss: file URL of another host", "path", "jf", None, "file://otherhost" + quote(bunny),
        reason_has="no path mapping covers")
    add("jf near miss: a NUL in the name", "path", "jf", None, bunny + "\x00", reason_has="nothing to identify")
    add("jf near miss: the path with a trailing slash (a folder)", "path", "jf", J["bunny"], bunny + "/")

    # -- path: Plex, case-insensitive mapping ---------------------------------------------------------
    for key, rel in (("101", "Movies/Movie 1 (2001)/Movie 1.mkv"), ("102", "Movies/Movie 2 (2002)/Movie 2.mkv"),
                     ("201", "TV/Show/Season 01/Show - S01E01.mkv"), ("204", "TV/Show/Season 01/Show - S01E04.mkv")):
        add("plex path %s" % key, "path", "plex", key, "/mnt/nas/" + rel)
        add("plex near miss %s: case" % key, "path", "plex", None, "/mnt/nas/" + rel.lower(),
            reason_has="not in server index")
    add("plex ignore_case mapping", "windows", "plex", "403", "/mnt/ci/CASE (2000)/case.MKV")
    add("plex ignore_case mapping, other name", "windows", "plex", None, "/mnt/ci/CASE (2000)/case2.MKV",
        reason_has="not in server index")

    # -- ids: provider ids and kinds ---------------------------------------------------------------
    add("imdb alone, no kind", "ids", "jf", J["matrix"], "/elsewhere/a.mkv", {"imdb": "tt0133093"})
    add("imdb of an episode, no kind", "ids", "jf", J["pilot"], "/elsewhere/a.mkv", {"imdb": "tt2000001"})
    add("tmdb 603 as a movie", "ids", "jf", J["matrix"], "/elsewhere/a.mkv", {"tmdb": "603"}, "movie")
    add("tmdb 603 as an episode", "ids", "jf", J["pilot"], "/elsewhere/a.mkv", {"tmdb": "603"}, "episode")
    add("tmdb 603, kind unknown", "ids", "jf", None, "/elsewhere/a.mkv", {"tmdb": "603"},
        reason_has="kind of item")
    add("movie not in the library sharing an episode's tmdb", "ids", "jf", None, "/elsewhere/a.mkv",
        {"tmdb": "900"}, "movie", reason_has="no movie item with tmdb 900")
    add("series tvdb as the player's id for a movie", "ids", "jf", None, "/elsewhere/a.mkv",
        {"tvdb": "70000"}, "movie", reason_has="no movie item")
    add("episode tvdb equal to another show's series id", "ids", "jf", J["second"], "/elsewhere/a.mkv",
        {"tvdb": "70000"}, "episode")
    add("series id given as tvshow.tvdb never names an episode", "ids", "jf", None, "/elsewhere/a.mkv",
        {"tvshow.tvdb": "70000"}, "episode", reason_has="no provider id")
    add("unique imdb with an ambiguous tmdb", "ids", "plex", "300", "/elsewhere/a.mkv",
        {"imdb": "tt0099999", "tmdb": "603"}, "movie")
    add("unique imdb with an ambiguous tmdb that leaves it out", "ids", "plex", None, "/elsewhere/a.mkv",
        {"imdb": "tt1000001", "tmdb": "603"}, "movie", reason_has="disagree")
    add("imdb given, candidate has none (found by tmdb)", "ids", "jf", None, "/elsewhere/a.mkv",
        {"imdb": "tt9999998", "tmdb": "10378"}, "movie", reason_has="no imdb id to confirm")
    add("tmdb alone where the item has no imdb", "ids", "jf", J["bunny"], "/elsewhere/a.mkv", {"tmdb": "10378"},
        "movie")
    add("ids that contradict the candidate", "ids", "jf", None, "/elsewhere/a.mkv",
        {"imdb": "tt0133093", "tmdb": "604"}, "movie", reason_has="disagree")
    add("ids naming two items", "ids", "jf", None, "/elsewhere/a.mkv", {"imdb": "tt0133093", "tmdb": "700"},
        "movie", reason_has="disagree")
    add("kind contradicts the only candidate", "ids", "jf", None, "/elsewhere/a.mkv", {"imdb": "tt0133093"},
        "episode", reason_has="no episode item")
    add("kind from the file name (guessit): episode", "ids", "jf", J["pilot"], "/elsewhere/Show.S01E01.mkv",
        {"tmdb": "603"})
    add("kind from the file name (guessit): movie", "ids", "jf", J["matrix"],
        "/elsewhere/The Matrix (1999).mkv", {"tmdb": "603"})
    add("kind from the file name cannot be told", "ids", "jf", None, "/elsewhere/clip.mkv", {"tmdb": "603"},
        reason_has="kind of item")
    add("plex tmdb 603 is ambiguous among movies", "ids", "plex", None, "/elsewhere/a.mkv", {"tmdb": "603"},
        "movie", reason_has="ambiguous")
    add("plex episode by tvdb", "ids", "plex", "201", "/elsewhere/a.mkv", {"tvdb": "71001"}, "episode")
    add("plex imdb unknown", "ids", "plex", None, "/elsewhere/a.mkv", {"imdb": "tt7777777"},
        reason_has="no item with imdb tt7777777")
    add("path item contradicted by the player's imdb", "ids", "jf", None, "/mnt/media/" + jpaths["bunny"],
        {"imdb": "tt0133093"}, reason_has="no imdb id to confirm")
    add("path item contradicted by the host's kind", "ids", "jf", None, "/mnt/media/" + jpaths["matrix"],
        kind="episode", reason_has="is a movie")
    add("path item agreeing with the player's ids", "ids", "jf", J["matrix"], "/mnt/media/" + jpaths["matrix"],
        {"imdb": "tt0133093", "tmdb": "603"}, "movie")
    add("emby tmdb 603 as an episode", "ids", "emby", E["pilot"], "/x/a.mkv", {"tmdb": "603"}, "episode")
    add("emby tmdb 603 as a movie", "ids", "emby", E["matrix"], "/x/a.mkv", {"tmdb": "603"}, "movie")
    add("emby series tvdb as an episode id", "ids", "emby", None, "/x/a.mkv", {"tvdb": "70000"}, "episode",
        reason_has="no episode item")

    # -- multi: parts and versions ----------------------------------------------------------------------
    for n, rel in enumerate(("Long cd1.avi", "Long cd2.avi", "Long 1080p.mkv")):
        add("plex multi-part/version file %d" % n, "multi", "plex", "300", "/mnt/nas/Movies/Long (1990)/" + rel)
        add("plex multi-part/version url %d" % n, "multi", "plex", "300",
            plex.url + "/library/parts/%d/1/file" % (3001 + n))
    add("plex multi: a part that does not exist", "multi", "plex", None, "/mnt/nas/Movies/Long (1990)/Long cd3.avi",
        reason_has="not in server index")
    add("jf version (MediaSources)", "multi", "jf", J["matrix"], "/mnt/media/Movies/The Matrix (1999)/The Matrix - 2160p.mkv")
    add("emby version (MediaSources)", "multi", "emby", E["amelie"],
        "/mnt/media/Movies/Amélie (2001)/Amélie - Director's Cut.mkv")
    add("emby main version", "multi", "emby", E["amelie"], "/mnt/media/Movies/Amélie (2001)/Amélie.mkv")
    # stacked files (Jellyfin/Emby AdditionalParts): every part names the item the library shows
    for part in ("cd1", "cd2", "cd3"):
        add("jf stacked part %s" % part, "multi", "jf", J["stacked"],
            "/mnt/media/Movies/Stacked (1995)/Stacked %s.avi" % part)
    add("jf stacked: a part that does not exist", "multi", "jf", None,
        "/mnt/media/Movies/Stacked (1995)/Stacked cd4.avi", reason_has="not in server index")
    add("jf stacked part 2 with the item's imdb", "multi", "jf", J["stacked"],
        "/mnt/media/Movies/Stacked (1995)/Stacked cd2.avi", ids={"imdb": "tt0000888"})
    add("jf stacked part 2 with another film's imdb", "multi", "jf", None,
        "/mnt/media/Movies/Stacked (1995)/Stacked cd2.avi", ids={"imdb": "tt0133093"}, reason_has="disagree")
    for part in ("part1", "part2"):
        add("emby stacked %s" % part, "multi", "emby", E["stacked"],
            "/mnt/media/Movies/Stacked (1995)/Stacked - %s.mkv" % part)

    # -- symlink -------------------------------------------------------------------------------
    add("symlinked mapping, literal path", "symlink", "plexsym", "101", str(nas / "Movies/Movie 1 (2001)/Movie 1.mkv"))
    add("symlinked mapping, resolved path", "symlink", "plexsym", "101",
        str(real / "Movies/Movie 1 (2001)/Movie 1.mkv"))
    add("dir/.. through a link into another show", "symlink", "plexsym", "402",
        str(nas / "TV/ShowA/Extras/../Season 01/ep.mkv"))
    add("dir/.. through a link, resolved from the real side", "symlink", "plexsym", "402",
        str(real / "TV/ShowA/Extras/../Season 01/ep.mkv"))
    add("plain .. without links", "symlink", "plexsym", "401", str(nas / "TV/ShowA/Season 01/../Season 01/ep.mkv"))
    add("a link the server never saw", "symlink", "plexsym", "101", str(real / "Movies/Favourite/Movie 1.mkv"))
    add("relative path with ..", "symlink", "plexsym", "201", str(nas / "TV/Show/Season 01/x/../Show - S01E01.mkv"))
    add("multi-part file through the link", "symlink", "plexsym", "300", str(nas / "Movies/Long (1990)/Long cd2.avi"))
    add("symlinked folder outside any mapping", "symlink", "plexsym", None, str(tmp_path / "elsewhere/x.mkv"),
        reason_has="no path mapping covers")

    # -- windows: Windows, UNC and SMB forms ------------------------------------------------------------
    for key, rel in (("matrix", r"Movies\The Matrix (1999)\The Matrix.mkv"), ("amelie", r"Movies\Amélie (2001)\Amélie.mkv")):
        posix = rel.replace("\\", "/")
        add("emby windows server %s" % key, "windows", "emby", E[key], "/mnt/media/" + posix)
        add("emby windows server %s, other case" % key, "windows", "emby", E[key], "/mnt/media/" + posix.upper())
        add("emby windows server %s, near miss" % key, "windows", "emby", None, "/mnt/media/" + posix + ".part",
            reason_has="not in server index")
    for key, rel in (("pilot", "Show/Season 01/Show - S01E01.mkv"), ("second", "Show/Season 01/Show - S01E02.mkv")):
        add("emby smb:// from Kodi %s" % key, "windows", "emby", E[key], "smb://nas/tv/" + rel)
        add("emby smb:// with credentials and other case %s" % key, "windows", "emby", E[key],
            "smb://user:pw@NAS/TV/" + rel)
        add("emby //NAS/share mapping %s" % key, "windows", "emby", E[key], "/mnt/tv/" + rel)
        add("emby smb:// other share %s" % key, "windows", "emby", None, "smb://nas/tv2/" + rel,
            reason_has="no path mapping covers")
    add("emby UNC local path (Windows mpv) without mapping", "windows", "emby", None,
        r"\\NAS\tv\Show\Season 01\Show - S01E01.mkv", reason_has="no path mapping covers")
    return world


def replaced_cases(world: World) -> List[Case]:
    """After ``replace_plex2``: the new keys of the same files; the old keys never."""
    out = []
    for old, new in (("101", "103"), ("102", "101"), ("103", "102")):
        n = int(old) - 100
        path = "/mnt/nas/Movies/Movie %d (%d)/Movie %d.mkv" % (n, 2000 + n, n)
        out.append(Case("replaced server: movie %d by path" % n, "replaced", "plex2", MediaRef(path=path), new))
        out.append(Case("replaced server: movie %d by imdb" % n, "replaced", "plex2",
                        MediaRef(path="/x.mkv", provider_ids={"imdb": "tt%07d" % (1000000 + n)}), new))
    for n in range(1, 5):
        path = "/mnt/nas/TV/Show/Season 01/Show - S01E%02d.mkv" % n
        out.append(Case("replaced server: episode %d by path" % n, "replaced", "plex2", MediaRef(path=path),
                        str(1200 + n)))
    return out
