"""Path parsing and path mappings: component-wise, per style, with odd names."""
import pytest

from playbacksync.config import PathMapping
from playbacksync.identify.paths import map_to_server, path_key, split_path

M = PathMapping


@pytest.mark.parametrize("a, b", [
    ("/media/movies/X.mkv", "/media//movies/./X.mkv"),
    ("/media/movies/X.mkv", "/media/tv/../movies/X.mkv"),
    (r"D:\Media\Movies\X.mkv", "d:/media/movies/x.MKV"),
    (r"\\NAS\Share\Film.mkv", r"\\nas\share\film.mkv"),
    ("file://nas/share/Film.mkv", r"\\NAS\share\film.mkv"),
    ("smb://NAS/Share/Film.mkv", "smb://user:secret@nas/share/film.mkv"),
    ("file:///home/me/a%20b/%C3%A9t%C3%A9.mkv", "/home/me/a b/été.mkv"),
    ("file://localhost/srv/x.mkv", "/srv/x.mkv"),
    ("file:///C:/Media/x.mkv", r"C:\media\X.mkv"),
    ("/m/e\u0301te\u0301.mkv", "/m/\u00e9t\u00e9.mkv"),  # NFD (macOS) equals NFC
])
def test_same_file(a, b):
    assert path_key(a) == path_key(b)


@pytest.mark.parametrize("a, b", [
    ("/media/movies/X.mkv", "/media/movies/x.mkv"),  # POSIX is case-sensitive
    ("nfs://nas/export/A.mkv", "nfs://nas/export/a.mkv"),
    ("smb://nas/share/a.mkv", "nfs://nas/share/a.mkv"),
    (r"C:\a.mkv", r"D:\a.mkv"),
    ("/media/a\\b.mkv", "/media/a/b.mkv"),  # a backslash is a name character on POSIX
    ("/media/movies/X.mkv", "/media/movies/X.mkv "),
])
def test_different_files(a, b):
    assert path_key(a) != path_key(b)


def test_odd_names_survive():
    name = "line one\nline two\t \u00fc\u6f22\u5b57 " + "x" * 2000 + ".mkv"
    sp = split_path("/media/" + name)
    assert sp.parts == ("media", name)
    assert split_path("smb://nas/Share/" + name).display() == "smb://nas/Share/" + name


def test_relative_path_resolves_against_cwd():
    assert split_path("clips/../a.mkv", cwd="/home/me").key() == "/home/me/a.mkv"
    assert split_path("a.mkv", cwd=r"C:\Users\me").key() == "c:/users/me/a.mkv"
    assert split_path("") is None
    assert split_path(r"\\only-server") is None


LINUX = (M("/mnt/media", "/srv/media"), M("/mnt/media/tv", "/data/tv"))
WIN = (M("/mnt/nas", r"D:\Media"),)
SMB = (M("/home/me/nas", "smb://nas/Media"),)
KODI_SMB = (M("smb://nas/media", "/srv/media"),)


@pytest.mark.parametrize("mappings, local, expected", [
    (LINUX, "/mnt/media/movies/X.mkv", "/srv/media/movies/X.mkv"),
    (LINUX, "/mnt/media/tv/Show/S01E01.mkv", "/data/tv/Show/S01E01.mkv"),  # most specific wins
    (LINUX, "/mnt/media", "/srv/media"),
    (LINUX, "/mnt/media2/movies/X.mkv", None),  # component-wise: media ≠ media2
    (LINUX, "/mnt/Media/movies/X.mkv", None),  # POSIX local side is case-sensitive
    (LINUX, "/other/X.mkv", None),
    (WIN, "/mnt/nas/Movies/The Film (1999)/film.mkv", r"D:\Media\Movies\The Film (1999)\film.mkv"),
    (SMB, "/home/me/nas/Movies/x.mkv", "smb://nas/Media/Movies/x.mkv"),
    (KODI_SMB, "smb://NAS/Media/Movies/x.mkv", "/srv/media/Movies/x.mkv"),  # smb side folds case
    (KODI_SMB, "smb://nas/media2/x.mkv", None),
    ((M("/mnt/media/", "/srv/media/"),), "/mnt/media/x.mkv", "/srv/media/x.mkv"),  # trailing separators
    ((), "/srv/media/x.mkv", "/srv/media/x.mkv"),  # no mappings: same paths on both sides
    ((M("Z:\\Videos", "/data/videos"),), r"z:\videos\Sub\X.mkv", "/data/videos/Sub/X.mkv"),  # Windows player
    ((M("Z:\\Videos", "/data/videos"),), r"Z:\Videos2\X.mkv", None),
])
def test_map_to_server(mappings, local, expected):
    mapped = map_to_server(split_path(local), mappings)
    if expected is None:
        assert mapped is None
    else:
        assert mapped.server_path.display() == expected
        assert mapped.server_path.key() == path_key(expected)


def test_windows_server_path_matches_whatever_case_and_separator():
    mapped = map_to_server(split_path("/mnt/nas/movies/FILM.MKV"), WIN)
    assert mapped.server_path.key() == path_key(r"D:\Media\Movies\Film.mkv")
    assert mapped.server_path.key() == path_key("D:/MEDIA/movies/film.mkv")
    assert mapped.server_path.key() != path_key("/Media/Movies/Film.mkv")
