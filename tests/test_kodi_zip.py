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
                   "resources/lib/playbacksync/hosts/kodi/kodi_api.py", "resources/lib/playbacksync/app.py",
                   "resources/lib/dataset/__init__.py", "resources/lib/sqlalchemy/__init__.py",
                   "resources/lib/alembic/__init__.py", "resources/lib/mako/__init__.py",
                   "resources/lib/markupsafe/__init__.py", "resources/lib/typing_extensions.py",
                   "resources/lib/platformdirs/__init__.py", "resources/lib/tomli_w/__init__.py",
                   "resources/lib/importlib_resources/__init__.py"):
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
        compiled = [n for n, m in sys.modules.items()
                    if (getattr(m, "__file__", None) or "").startswith({str(addon)!r})
                    and not m.__file__.endswith(".py")]
        assert not compiled, compiled
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-S", "-I", "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")


def test_build_refuses_a_version_mismatch(tmp_path, monkeypatch):
    monkeypatch.setattr(playbacksync, "__version__", "0.0.0-other")
    with pytest.raises(kodi_zip.BuildError, match="version"):
        kodi_zip.build(tmp_path)


PY38 = sorted(Path.home().glob(".pyenv/versions/3.8.*/bin/python"))


@pytest.mark.skipif(not PY38, reason="pyenv's Python 3.8 is not installed")
def test_every_file_in_the_zip_compiles_with_python_3_8(built):
    """Kodi 19/20 on Windows, Xbox, Android, macOS and iOS run Python 3.8: no newer syntax ships."""
    _, names, folder = built
    code = textwrap.dedent("""
        import pathlib, sys
        bad = []
        for path in sorted(pathlib.Path(sys.argv[1]).rglob("*.py")):
            try:
                compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
            except SyntaxError as exc:
                bad.append("%s:%s: %s" % (path, exc.lineno, exc.msg))
        print("\\n".join(bad))
        print("checked", len(list(pathlib.Path(sys.argv[1]).rglob("*.py"))))
    """)
    done = subprocess.run([str(PY38[-1]), "-I", "-S", "-c", code, str(folder)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    *bad, checked = done.stdout.strip().splitlines()
    assert [b for b in bad if b] == []
    assert int(checked.split()[1]) == sum(n.endswith(".py") for n in names)


def test_bundled_libraries_come_from_the_pins_not_the_build_venv(built):
    _, names, folder = built
    pins = dict(kodi_zip.pinned_libraries(ROOT / "kodi-libs.txt"))
    version = re.search(r'__version__ = "([^"]+)"', (folder / "resources/lib/sqlalchemy/__init__.py").read_text())
    assert version.group(1) == pins["SQLAlchemy"]
    assert (folder / "resources/lib/dataset/__init__.py").is_file()
    assert PREFIX + "resources/lib/LICENSES/SQLAlchemy/LICENSE" in names


_NEW_METHODS = {"removeprefix", "removesuffix", "is_relative_to", "with_stem", "bit_count", "readlink"}
_NEW_MODULES = {"tomllib", "zoneinfo", "graphlib"}
_BUILTIN_GENERICS = {"list", "dict", "set", "tuple", "frozenset", "type"}


def _py39_plus_uses(source: str):
    """Standard-library API and runtime typing newer than 3.8 that compiling with 3.8 does not catch."""
    import ast

    tree = ast.parse(source)
    annotations = set()
    for node in ast.walk(tree):
        for ann in [getattr(node, "annotation", None), getattr(node, "returns", None)]:
            if ann is not None:
                annotations |= {id(n) for n in ast.walk(ann)}
    found = []
    top_level = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if id(node) in annotations:
            continue
        if isinstance(node, ast.Attribute) and node.attr in _NEW_METHODS:
            found.append(f"{node.lineno}: .{node.attr}()")
        elif isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) in top_level:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"{node.lineno}: import {n}" for n in names if n.split(".")[0] in _NEW_MODULES]
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in _BUILTIN_GENERICS:
            found.append(f"{node.lineno}: {node.value.id}[...] at run time")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr) and any(
                (isinstance(side, ast.Constant) and side.value is None)
                or (isinstance(side, ast.Name) and side.id in {"str", "int", "float", "bytes", "bool"})
                for side in (node.left, node.right)):
            found.append(f"{node.lineno}: X | Y type union at run time")
        elif isinstance(node, ast.Call) and any(k.arg in ("kw_only", "slots") for k in node.keywords):
            found.append(f"{node.lineno}: dataclass(kw_only/slots)")
        elif type(node).__name__ == "Match":
            found.append(f"{node.lineno}: match statement")
    return found


def test_package_code_in_the_zip_uses_no_api_newer_than_python_3_8(built):
    _, _, folder = built
    problems = {}
    for path in sorted((folder / "resources" / "lib" / "playbacksync").rglob("*.py")):
        found = _py39_plus_uses(path.read_text(encoding="utf-8"))
        if found:
            problems[str(path.relative_to(folder))] = found
    assert problems == {}


def test_the_api_check_finds_what_it_looks_for():
    bad = "import tomllib\nx = 'a'.removeprefix('b')\nY = list[int]\nZ = str | None\n"
    assert len(_py39_plus_uses(bad)) == 4
    fine = "from __future__ import annotations\ndef f(a: list[int] | None) -> dict[str, int]:\n    import tomllib\n"
    assert _py39_plus_uses(fine) == []
