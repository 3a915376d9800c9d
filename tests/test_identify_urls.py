"""Stream URLs: which configured server owns one, and which item it names."""
import pytest

from playbacksync.config import ServerConfig
from playbacksync.identify.urls import item_ref, owners, rest_after_base, safe_url, url_token

JF = ServerConfig(id="jf", type="jellyfin", url="http://192.168.1.10:8096")
JF_SUB = ServerConfig(id="jf-sub", type="jellyfin", url="https://media.example.org/jellyfin/")
EMBY = ServerConfig(id="emby", type="emby", url="http://nas.local:8096/emby-base")
PLEX = ServerConfig(id="plex", type="plex", url="https://plex.example.org")
ALL = (JF, JF_SUB, EMBY, PLEX)
GUID = "0123456789abcdef0123456789abcdef"


def ref(url):
    """(owner ids, (kind, id)) for a URL against ALL."""
    found = owners(url, ALL)
    if len(found) != 1:
        return [s.id for s in found], None
    rest, query = rest_after_base(url, found[0])
    r = item_ref(found[0].type, rest, query)
    return [found[0].id], (r.kind, r.id) if r else None


@pytest.mark.parametrize("url, owner, expected", [
    ("http://192.168.1.10:8096/Videos/%s/stream.mkv?Static=true&api_key=SECRET" % GUID, "jf", ("item", GUID)),
    ("http://192.168.1.10:8096/videos/%s/stream" % GUID.upper(), "jf", ("item", GUID)),
    ("http://192.168.1.10:8096/Videos/01234567-89ab-cdef-0123-456789abcdef/master.m3u8", "jf", ("item", GUID)),
    ("http://192.168.1.10:8096/Videos/%s/hls1/main/0.ts" % GUID, "jf", ("item", GUID)),
    ("http://192.168.1.10:8096/Audio/%s/universal" % GUID, "jf", ("item", GUID)),
    ("http://192.168.1.10:8096/Items/%s/Download?api_key=x" % GUID, "jf", ("item", GUID)),
    ("http://192.168.1.10:8096/emby/Videos/%s/stream.mp4" % GUID, "jf", ("item", GUID)),
    ("HTTP://192.168.1.10:8096/Videos/%s/stream" % GUID, "jf", ("item", GUID)),
    ("http://user:pw@192.168.1.10:8096/Videos/%s/stream" % GUID, "jf", ("item", GUID)),
    ("https://media.example.org/jellyfin/Videos/%s/stream.mkv" % GUID, "jf-sub", ("item", GUID)),
    ("https://media.example.org:443/Jellyfin/Videos/%s/stream.mkv" % GUID, "jf-sub", ("item", GUID)),
    ("http://nas.local:8096/emby-base/emby/Videos/12345/stream.mkv?Static=true", "emby", ("item", "12345")),
    ("http://nas.local:8096/emby-base/Videos/12345/original.mkv", "emby", ("item", "12345")),
    ("http://nas.local:8096/emby-base/Items/777/Download", "emby", ("item", "777")),
    ("https://plex.example.org/library/metadata/4242", "plex", ("item", "4242")),
    ("https://plex.example.org/library/parts/99/1700000000/file.mkv?X-Plex-Token=SECRET", "plex", ("part", "99")),
    ("https://plex.example.org/library/parts/99/file.mkv", "plex", ("part", "99")),
    ("https://plex.example.org/video/:/transcode/universal/start.m3u8?path=%2Flibrary%2Fmetadata%2F4242",
     "plex", ("item", "4242")),
    # the transcoder's path= may hold the whole URL of the server as it sees itself
    ("https://plex.example.org/video/:/transcode/universal/start.m3u8?path=http%3A%2F%2F127.0.0.1%3A32400"
     "%2Flibrary%2Fmetadata%2F4242&mediaIndex=0", "plex", ("item", "4242")),
    ("https://plex.example.org/video/:/transcode/universal/start.mpd?path=http://10.0.0.2:32400/library/metadata/7",
     "plex", ("item", "7")),
    # a URL of the right server that names no playable item
    ("http://192.168.1.10:8096/Videos/%s/Subtitles/0/Stream.srt" % GUID, "jf", None),
    ("http://192.168.1.10:8096/Videos/%s/Trickplay/320/0.jpg" % GUID, "jf", None),
    ("http://192.168.1.10:8096/Videos/not-a-guid/stream.mkv", "jf", None),
    ("http://192.168.1.10:8096/Items/%s/Images/Primary" % GUID, "jf", None),
    ("http://nas.local:8096/emby-base/Videos/1/2/Subtitles/0/Stream.srt", "emby", None),
    ("https://plex.example.org/library/metadata/1,2,3", "plex", None),
    ("https://plex.example.org/library/metadata/4242/file", "plex", None),
    ("https://plex.example.org/library/parts/99/indexes/sd", "plex", None),
    ("https://plex.example.org/video/:/transcode/universal/start.m3u8?path=%2Flibrary%2Fsections", "plex", None),
    ("https://plex.example.org/video/:/transcode/universal/start.m3u8?path=ftp%3A%2F%2Fx%2Flibrary%2Fmetadata%2F1",
     "plex", None),
])
def test_url_of_configured_server(url, owner, expected):
    assert ref(url) == ([owner], expected)


@pytest.mark.parametrize("url", [
    "http://192.168.1.11:8096/Videos/%s/stream" % GUID,  # other host
    "http://192.168.1.10:8097/Videos/%s/stream" % GUID,  # other port
    "https://192.168.1.10:8096/Videos/%s/stream" % GUID,  # other scheme
    "http://localhost:8096/Videos/%s/stream" % GUID,  # no DNS: another spelling is another server
    "https://media.example.org/Videos/%s/stream" % GUID,  # outside the base path
    "https://media.example.org/jellyfin2/Videos/%s/stream" % GUID,  # base path is component-wise
    "http://nas.local:8096/Videos/12345/stream",
    "http://plex.example.org/library/metadata/4242",  # http vs https
    "https://plex.example.org:32400/library/metadata/4242",
    "http://192.168.1.10:notaport/Videos/x/stream",
    "/media/file.mkv",
    "smb://nas/share/x.mkv",
])
def test_url_of_no_configured_server(url):
    assert owners(url, ALL) == []


def test_longest_base_path_owns_the_url():
    root = ServerConfig(id="root", type="jellyfin", url="http://h:8096")
    sub = ServerConfig(id="sub", type="emby", url="http://h:8096/emby-server")
    assert [s.id for s in owners("http://h:8096/emby-server/Videos/1/stream", (root, sub))] == ["sub"]
    assert [s.id for s in owners("http://h:8096/Videos/%s/stream" % GUID, (root, sub))] == ["root"]
    twice = ServerConfig(id="jf-2", type="jellyfin", url="http://h:8096/")  # same server, second user
    assert [s.id for s in owners("http://h:8096/Videos/1/stream", (root, twice))] == ["root", "jf-2"]


@pytest.mark.parametrize("configured", ["http://h:8096", "http://h:8096/emby", "http://h:8096/EMBY/"])
@pytest.mark.parametrize("played", ["http://h:8096/emby/Videos/42/stream.mkv", "http://h:8096/Videos/42/stream"])
def test_emby_with_or_without_its_emby_prefix(configured, played):
    emby = ServerConfig(id="e", type="emby", url=configured)
    assert owners(played, (emby,)) == [emby]
    rest, query = rest_after_base(played, emby)
    assert item_ref("emby", rest, query).id == "42"


def test_safe_url_drops_credentials_and_query():
    text = safe_url("http://bob:hunter2@Host:8096/Videos/x/stream?api_key=SECRET&X-Plex-Token=T")
    assert text == "http://host:8096/Videos/x/stream"
    assert "hunter2" not in safe_url("smb://bob:hunter2@nas/x") and "SECRET" not in safe_url("rtsp://x?SECRET")


@pytest.mark.parametrize("param", ["ApiKey", "api_key", "apikey", "API_KEY"])
def test_stream_token_picks_the_user_when_a_server_is_configured_twice(param):
    alice = ServerConfig(id="jf-alice", type="jellyfin", url="http://192.168.1.10:8096", token="tokALICE123")
    bob = ServerConfig(id="jf-bob", type="jellyfin", url="http://192.168.1.10:8096", token="tokBOB45678")
    url = "http://192.168.1.10:8096/Videos/%s/stream.mkv?Static=true&%s=tokBOB45678" % (GUID, param)
    assert [s.id for s in owners(url, (alice, bob))] == ["jf-bob"]
    assert url_token(url) == "tokBOB45678"
    # Another client's token (say the web app's): both stay candidates.
    other = url.replace("tokBOB45678", "tokWEBAPP999")
    assert [s.id for s in owners(other, (alice, bob))] == ["jf-alice", "jf-bob"]


@pytest.mark.parametrize("param", ["ApiKey", "api_key"])
def test_stream_tokens_stay_out_of_logs_and_messages(param):
    from playbacksync.redact import redact

    url = "http://192.168.1.10:8096/Videos/%s/stream?%s=s3cretTOKENvalue&Static=true" % (GUID, param)
    assert "s3cretTOKENvalue" not in redact(url)  # what the log handlers' filter applies
    assert "s3cretTOKENvalue" not in safe_url(url)
    assert "s3cretTOKENvalue" not in redact(f'{{"{param}": "s3cretTOKENvalue"}}')
    assert "s3cretTOKENvalue" not in redact(f"{param}: s3cretTOKENvalue")
