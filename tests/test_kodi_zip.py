"""The Kodi add-on zip: layout, no compiled files, and the bundled libraries work pure-Python."""
from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

import playbacksync
from playbacksync import kodi_zip

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "service.playbacksync/"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("zip")
    path = kodi_zip.build(out)
    folder = out / "x"
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        zf.extractall(folder)
    return path, names, folder / "service.playbacksync"


def test_zip_name_and_version_match_addon_xml(built):
    path, names, _ = built
    version = re.search(r'<addon\b[^>]*\bversion="([^"]+)"', (ROOT / "addon.xml").read_text()).group(1)
    assert version == playbacksync.__version__
    assert path.name == f"service.playbacksync-{version}.zip"


def test_zip_layout(built):
    _, names, _ = built
    assert all(n.startswith(PREFIX) for n in names), "one top folder named by the add-on id"
    for needed in ("addon.xml", "resources/settings.xml", "resources/service.py", "resources/script.py",
                   "resources/icon.png", "resources/fanart.png",
                   "resources/language/resource.language.en_gb/strings.po",
                   "resources/lib/playbacksync/hosts/kodi_host.py", "resources/lib/playbacksync/app.py",
                   "resources/lib/dataset/__init__.py", "resources/lib/sqlalchemy/__init__.py",
                   "resources/lib/alembic/__init__.py", "resources/lib/mako/__init__.py",
                   "resources/lib/markupsafe/__init__.py", "resources/lib/typing_extensions.py",
                   "resources/lib/platformdirs/__init__.py", "resources/lib/tomli_w/__init__.py", "resources/lib/LICENSES/SQLAlchemy/LICENSE"):
        assert PREFIX + needed in names, needed
    # requests comes from Kodi's script.module.requests; mpv's host has no place in Kodi.
    assert not any(n.startswith(PREFIX + "resources/lib/requests/") for n in names)
    assert not any(n.startswith(PREFIX + "resources/lib/playbacksync/hosts/mpv/") for n in names)


def test_zip_has_no_compiled_or_cache_files(built):
    _, names, _ = built
    bad = [n for n in names if re.search(r"(\.pyc|\.pyo|\.so|\.pyd|\.dll|\.dylib)$|__pycache__|\.DS_Store", n)]
    assert bad == []


def test_bundled_libraries_run_without_site_packages(built, tmp_path):
    """Only the stdlib and resources/lib on the path (-S -I): dataset on SQLite, alembic, the queue."""
    _, _, addon = built
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(addon / 'resources' / 'lib')!r})
        import dataset, sqlalchemy, alembic, mako, markupsafe
        from sqlalchemy.util._has_cython import HAS_CYEXTENSION
        assert not HAS_CYEXTENSION, "compiled SQLAlchemy extensions loaded"
        assert "greenlet" not in sys.modules
        for m in (dataset, sqlalchemy, alembic, mako, markupsafe):
            assert m.__file__.startswith({str(addon)!r}), m.__file__
        assert markupsafe.escape("<a>") == "&lt;a&gt;"
        db = dataset.connect("sqlite:///{tmp_path / 'plain.sqlite'}")
        db["t"].insert({{"a": 1}})
        assert [r["a"] for r in db["t"].all()] == [1]
        from playbacksync.settings import config_from_flat
        assert config_from_flat({{"plex_enabled": "true", "plex_url": "http://127.0.0.1:1"}}).servers[0].type == "plex"
        from playbacksync.queue import SyncQueue
        from playbacksync.changes import Change
        q = SyncQueue({str(tmp_path / 'q')!r})
        q.enqueue_change(Change(media_item_id="i1", source_id="s1", user_id="u", change_type="progress_update",
                                position_ms=1000, duration_ms=10000, completed=False, created_at=1.0))
        assert q.counts()["s1"]["pending"] == 1
        q.close()
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-S", "-I", "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")


def test_build_refuses_a_version_mismatch(tmp_path, monkeypatch):
    monkeypatch.setattr(playbacksync, "__version__", "0.0.0-other")
    with pytest.raises(kodi_zip.BuildError, match="version"):
        kodi_zip.build(tmp_path)
