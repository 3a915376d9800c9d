"""Build the Kodi add-on zip: ``python -m playbacksync.kodi_zip [--out DIR]``.

Layout inside the zip (one top folder named by the add-on id, as Kodi's
"Install from zip file" expects)::

    service.playbacksync/addon.xml
    service.playbacksync/resources/{service.py,script.py,settings.xml,icon.png,fanart.png,language/...}
    service.playbacksync/resources/lib/playbacksync/...        this package (without the mpv host)
    service.playbacksync/resources/lib/{dataset,sqlalchemy,alembic,mako,markupsafe,platformdirs,tomli_w}/...
    service.playbacksync/resources/lib/typing_extensions.py
    service.playbacksync/resources/lib/LICENSES/<distribution>/...

``requests`` is not bundled: Kodi provides it as script.module.requests.
Only pure-Python files ship (no .so/.pyd, .pyc or __pycache__): SQLAlchemy
and MarkupSafe fall back to their Python implementations, so one zip serves
every platform.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata as md
import os
import re
import sys
import time
import zipfile
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

ADDON_ID = "service.playbacksync"
# Import name -> distribution name, for the licence files.
BUNDLED = {
    "dataset": "dataset",
    "sqlalchemy": "SQLAlchemy",
    "alembic": "alembic",
    "mako": "Mako",
    "markupsafe": "MarkupSafe",
    "typing_extensions": "typing_extensions",
    "platformdirs": "platformdirs",
    "tomli_w": "tomli_w",  # the settings package writes the mpv config file with it
}
# Compiled or typing-only files; Kodi's checker also flags .pyi and py.typed.
_SKIP_SUFFIXES = (".pyc", ".pyo", ".so", ".pyd", ".dylib", ".dll", ".c", ".pyx", ".pxd", ".orig", ".pyi")
_SKIP_NAMES = {"__pycache__", ".DS_Store", ".pytest_cache", "Thumbs.db", "py.typed"}
_LIB_SKIP_DIRS = ("alembic/templates/",)  # only for `alembic init`, never used at run time
# This builder, mpv's host package (with its Lua scripts) and mpv's commands have no use in Kodi; the migration template
# only serves `alembic revision` (upgrades never read it).
_PACKAGE_SKIP = {"kodi_zip.py", "cli_mpv.py", "queue/migrations/script.py.mako"}
_PACKAGE_SKIP_DIRS = ("hosts/mpv/",)
# Repo resources that are not part of the add-on (the README's screenshot ships as an asset).
_RESOURCE_SKIP = {"lib"}


class BuildError(RuntimeError):
    pass


def repo_root() -> Path:
    here = Path(__file__).resolve().parent  # plugin/playbacksync
    root = here.parent.parent
    if not (root / "addon.xml").is_file():
        raise BuildError(f"addon.xml not found next to plugin/ (looked in {root})")
    return root


def addon_version(addon_xml: Path) -> str:
    text = addon_xml.read_text(encoding="utf-8")
    m = re.search(r'<addon\b[^>]*\bversion="([^"]+)"', text)
    if not m:
        raise BuildError(f"{addon_xml}: no version attribute on <addon>")
    return m.group(1)


def _wanted(path: Path) -> bool:
    return not (path.name in _SKIP_NAMES or path.suffix in _SKIP_SUFFIXES
                or any(part in _SKIP_NAMES for part in path.parts))


def _walk(folder: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_NAMES)
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if _wanted(path):
                yield path


def _library_files() -> List[Tuple[Path, str]]:
    """(source, name inside resources/lib) for every bundled library and its licence."""
    files: List[Tuple[Path, str]] = []
    for module_name, dist_name in BUNDLED.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise BuildError(f"{module_name} is not installed in {sys.executable}: {exc}") from None
        origin = Path(module.__file__)
        if origin.name == "__init__.py":
            base = origin.parent
            for p in _walk(base):
                name = f"{module_name}/{p.relative_to(base).as_posix()}"
                if not name.startswith(_LIB_SKIP_DIRS):
                    files.append((p, name))
        else:
            files.append((origin, origin.name))
        try:
            dist = md.distribution(dist_name)
        except md.PackageNotFoundError:
            continue
        for entry in dist.files or ():
            name = entry.name.upper()
            if name.startswith(("LICENSE", "LICENCE", "COPYING", "NOTICE")) or "licenses/" in str(entry):
                files.append((Path(entry.locate()), f"LICENSES/{dist_name}/{entry.name}"))
    return files


def build(out_dir: Optional[os.PathLike] = None) -> Path:
    """Write dist/service.playbacksync-VERSION.zip and return its path."""
    root = repo_root()
    version = addon_version(root / "addon.xml")
    import playbacksync
    if playbacksync.__version__ != version:
        raise BuildError(f"addon.xml says version {version} but playbacksync.__version__ is "
                         f"{playbacksync.__version__}: make them equal")
    for needed in ("resources/settings.xml", "resources/icon.png", "resources/fanart.png",
                   "resources/service.py", "resources/script.py"):
        if not (root / needed).is_file():
            raise BuildError(f"{needed} is missing")
    out = Path(out_dir) if out_dir else root / "dist"
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{ADDON_ID}-{version}.zip"

    entries: List[Tuple[Path, str]] = [(root / "addon.xml", "addon.xml")]
    for path in _walk(root / "resources"):
        rel = path.relative_to(root / "resources").as_posix()
        if rel.split("/")[0] not in _RESOURCE_SKIP:
            entries.append((path, f"resources/{rel}"))
    package = Path(playbacksync.__file__).parent
    for path in _walk(package):
        rel = path.relative_to(package).as_posix()
        if rel not in _PACKAGE_SKIP and not rel.startswith(_PACKAGE_SKIP_DIRS):
            entries.append((path, f"resources/lib/playbacksync/{rel}"))
    entries += [(src, f"resources/lib/{name}") for src, name in _library_files()]

    tmp = target.with_name(target.name + ".part")
    stamp = time.localtime(int(os.environ.get("SOURCE_DATE_EPOCH", time.time())))[:6]
    seen = set()
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for src, name in sorted(entries, key=lambda e: e[1]):
            arcname = f"{ADDON_ID}/{name}"
            if arcname in seen:
                continue
            seen.add(arcname)
            info = zipfile.ZipInfo(arcname, date_time=max(stamp, (1980, 1, 1, 0, 0, 0)))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, src.read_bytes())
    os.replace(tmp, target)
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m playbacksync.kodi_zip",
                                     description="Build the installable Kodi add-on zip.")
    parser.add_argument("--out", help="output folder (default: dist/ at the top of the repository)")
    args = parser.parse_args(argv)
    try:
        path = build(args.out)
    except BuildError as exc:
        print(f"kodi_zip: {exc}", file=sys.stderr)
        return 1
    with zipfile.ZipFile(path) as zf:
        count = len(zf.namelist())
    print(f"{path} ({count} files, {path.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
