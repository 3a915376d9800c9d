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


def test_ignore_case_mapping_from_the_config_file(tmp_path):
    from playbacksync.settings import ConfigError, load_config

    path = tmp_path / "config.toml"
    path.write_text('[[servers]]\nid = "p"\ntype = "plex"\nurl = "http://127.0.0.1:32400"\n'
                    'path_mappings = [{ local = "/mnt/films", remote = "/srv/films", ignore_case = true },\n'
                    '                 { local = "/mnt/tv", remote = "/srv/tv" }]\n')
    maps = load_config(str(path)).servers[0].path_mappings
    assert [m.ignore_case for m in maps] == [True, False]
    mapped = map_to_server(split_path("/mnt/films/A/B.MKV"), maps)
    assert mapped.server_path.fold and mapped.server_path.key() == path_key("/srv/films/a/b.mkv").casefold()
    assert not map_to_server(split_path("/mnt/tv/x.mkv"), maps).server_path.fold
    path.write_text('[[servers]]\nid = "p"\ntype = "plex"\nurl = "http://127.0.0.1:32400"\n'
                    'path_mappings = [{ local = "/a", remote = "/b", ignore_case = "yes" }]\n')
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert "path_mappings[1].ignore_case" in str(info.value) and "true or false" in str(info.value)


@pytest.mark.parametrize("remote, other", [
    ("//NAS/tv/Show/x.mkv", r"\\nas\TV\show\X.mkv"),
    ("smb://nas/tv/Show/x.mkv", r"\\NAS\tv\Show\x.mkv"),
])
def test_unc_forms_on_the_server_side_are_one_file(remote, other):
    assert path_key(remote) == path_key(other)


def test_local_forms_resolve_dot_dot_through_symlinks(tmp_path):
    from playbacksync.identify.paths import local_forms

    (tmp_path / "b" / "s").mkdir(parents=True)
    (tmp_path / "a").mkdir()
    import os
    os.symlink(tmp_path / "b" / "s", tmp_path / "a" / "link")
    forms = [f.display() for f in local_forms(str(tmp_path / "a" / "link" / ".." / "x.mkv"))]
    assert forms == [str(tmp_path / "b" / "x.mkv")]  # never a/x.mkv, which the text suggests
    forms = [f.display() for f in local_forms(str(tmp_path / "a" / "link" / "y.mkv"))]
    assert forms == [str(tmp_path / "a" / "link" / "y.mkv"), str(tmp_path / "b" / "s" / "y.mkv")]
