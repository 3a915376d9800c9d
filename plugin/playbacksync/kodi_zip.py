"""Build the Kodi add-on zip: ``python -m playbacksync.kodi_zip [--out DIR]``.

Layout inside the zip (one top folder named by the add-on id, as Kodi's
"Install from zip file" expects)::

    service.playbacksync/addon.xml
    service.playbacksync/resources/{service.py,script.py,settings.xml,icon.png,fanart.png,language/...}
    service.playbacksync/resources/lib/playbacksync/...        this package (without the mpv host)
    service.playbacksync/resources/lib/{dataset,sqlalchemy,alembic,mako,...}/...   kodi-libs.txt's pins
    service.playbacksync/resources/lib/LICENSES/<distribution>/...

``requests`` is not bundled: Kodi provides it as script.module.requests.
Only pure-Python files ship (no .so/.pyd, .pyc or __pycache__): SQLAlchemy
and MarkupSafe fall back to their Python implementations, so one zip serves
every platform and every Python from 3.8 (the libraries come from the wheels
pinned in kodi-libs.txt, not from the build machine's own site-packages).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

ADDON_ID = "service.playbacksync"
LIBS_FILE = "kodi-libs.txt"  # the bundled libraries, pinned (read at the top of the repository)
PYTHON_FLOOR = "3.8"  # the oldest Python of any Kodi the add-on supports (Kodi 19/20 on Windows etc.)
# Compiled or typing-only files; Kodi's checker also flags .pyi and py.typed.
_SKIP_SUFFIXES = (".pyc", ".pyo", ".so", ".pyd", ".dylib", ".dll", ".c", ".pyx", ".pxd", ".orig", ".pyi",
                  ".h", ".cpp")
_SKIP_NAMES = {"__pycache__", ".DS_Store", ".pytest_cache", "Thumbs.db", "py.typed"}
_LIB_SKIP_DIRS = ("alembic/templates/",)  # only for `alembic init`, never used at run time
# This builder, mpv's host package (with its Lua scripts) and mpv's commands have no use in Kodi; the migration template
# only serves `alembic revision` (upgrades never read it).
_PACKAGE_SKIP = {"kodi_zip.py", "kodi_repo.py", "cli_mpv.py", "queue/migrations/script.py.mako"}
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


def pinned_libraries(pins_file: Path) -> List[Tuple[str, str]]:
    """(distribution, version) from a pins file such as kodi-libs.txt."""
    pins = []
    for line in pins_file.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not version.strip():
            raise BuildError(f"{pins_file.name}: pin {line!r} exactly (name==version)")
        pins.append((name.strip(), version.strip()))
    return pins


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _wheel_for(folder: Path, name: str, version: str) -> Optional[Path]:
    for path in sorted(folder.glob("*.whl")):
        dist, ver = path.name.split("-")[:2]
        if _norm(dist) == _norm(name) and ver == version:
            return path
    return None


def fetch_wheels(pins_file: Path, folder: Path) -> List[Path]:
    """The pinned wheels, downloaded (with pip, for Python 3.8) into ``folder`` when missing."""
    pins = pinned_libraries(pins_file)
    missing = [f"{n}=={v}" for n, v in pins if _wheel_for(folder, n, v) is None]
    if missing:
        folder.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                   "--python-version", PYTHON_FLOOR, "--platform", "manylinux2014_x86_64", "--platform", "any",
                   "--dest", str(folder)] + missing
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise BuildError("could not download the bundled libraries (" + " ".join(missing) + "):\n"
                             + done.stderr.strip()[-2000:])
    wheels = []
    for name, version in pins:
        wheel = _wheel_for(folder, name, version)
        if wheel is None:
            raise BuildError(f"no wheel for {name}=={version} in {folder}")
        wheels.append(wheel)
    return wheels


def library_files(wheels: List[Path]) -> List[Tuple[str, bytes]]:
    """(name inside resources/lib, content) for every bundled library's .py files and licence.

    Taken from the wheels, not from this interpreter's site-packages: the zip carries the
    versions pinned for Kodi (kodi-libs.txt) whatever the build machine runs. Compiled
    extensions in a wheel are left out; those libraries fall back to their Python code.
    """
    files: List[Tuple[str, bytes]] = []
    for wheel in wheels:
        dist_name = wheel.name.split("-")[0]
        with zipfile.ZipFile(wheel) as zf:
            for member in zf.namelist():
                if member.endswith("/"):
                    continue
                top, _, rest = member.partition("/")
                if top.endswith(".dist-info"):
                    base = member.rsplit("/", 1)[-1].upper()
                    if base.startswith(("LICENSE", "LICENCE", "COPYING", "NOTICE")) or "/licenses/" in member:
                        files.append((f"LICENSES/{dist_name}/{member.rsplit('/', 1)[-1]}", zf.read(member)))
                    continue
                if top.endswith((".data", ".libs")) or member.startswith(_LIB_SKIP_DIRS):
                    continue
                if not _wanted(Path(member)):
                    continue
                files.append((member, zf.read(member)))
    return files


def build(out_dir: Optional[os.PathLike] = None, wheels_dir: Optional[os.PathLike] = None, *,
          version: Optional[str] = None) -> Path:
    """Write dist/service.playbacksync-VERSION.zip and return its path.

    ``wheels_dir``: where the pinned library wheels are (downloaded when missing;
    default build/kodi-wheels at the top of the repository). ``version``: build as
    this version instead of addon.xml's (the repository tests build an update).
    """
    root = repo_root()
    wheels = fetch_wheels(root / LIBS_FILE, Path(wheels_dir) if wheels_dir else root / "build" / "kodi-wheels")
    source_version = addon_version(root / "addon.xml")
    import playbacksync
    if playbacksync.__version__ != source_version:
        raise BuildError(f"addon.xml says version {source_version} but playbacksync.__version__ is "
                         f"{playbacksync.__version__}: make them equal")
    for needed in ("resources/settings.xml", "resources/icon.png", "resources/fanart.png",
                   "resources/service.py", "resources/script.py"):
        if not (root / needed).is_file():
            raise BuildError(f"{needed} is missing")
    version = version or source_version
    if not re.fullmatch(r"\d+\.\d+\.\d+(?:[~+][\w.]+)?", version):
        raise BuildError(f"version {version!r} is not MAJOR.MINOR.PATCH")
    out = Path(out_dir) if out_dir else root / "dist"
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{ADDON_ID}-{version}.zip"

    entries: List[Tuple[str, bytes]] = [("addon.xml", (root / "addon.xml").read_bytes())]
    for path in _walk(root / "resources"):
        rel = path.relative_to(root / "resources").as_posix()
        if rel.split("/")[0] not in _RESOURCE_SKIP:
            entries.append((f"resources/{rel}", path.read_bytes()))
    package = Path(playbacksync.__file__).parent
    for path in _walk(package):
        rel = path.relative_to(package).as_posix()
        if rel not in _PACKAGE_SKIP and not rel.startswith(_PACKAGE_SKIP_DIRS):
            entries.append((f"resources/lib/playbacksync/{rel}", path.read_bytes()))
    entries += [(f"resources/lib/{name}", data) for name, data in library_files(wheels)]
    if version != source_version:
        entries = [(name, _with_version(name, data, source_version, version)) for name, data in entries]

    tmp = target.with_name(target.name + ".part")
    stamp = time.localtime(int(os.environ.get("SOURCE_DATE_EPOCH", time.time())))[:6]
    seen = set()
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in sorted(entries, key=lambda e: e[0]):
            arcname = f"{ADDON_ID}/{name}"
            if arcname in seen:
                continue
            seen.add(arcname)
            info = zipfile.ZipInfo(arcname, date_time=max(stamp, (1980, 1, 1, 0, 0, 0)))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    os.replace(tmp, target)
    return target


def _with_version(name: str, data: bytes, old: str, new: str) -> bytes:
    if name == "addon.xml":
        return re.sub(rb'(<addon\b[^>]*\bversion=")' + re.escape(old.encode()) + rb'"',
                      lambda m: m.group(1) + new.encode() + b'"', data, count=1)
    if name == "resources/lib/playbacksync/__init__.py":
        return data.replace(f'__version__ = "{old}"'.encode(), f'__version__ = "{new}"'.encode())
    return data


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m playbacksync.kodi_zip",
                                     description="Build the installable Kodi add-on zip.")
    parser.add_argument("--out", help="output folder (default: dist/ at the top of the repository)")
    parser.add_argument("--wheels", help="folder of the pinned library wheels (default: build/kodi-wheels)")
    args = parser.parse_args(argv)
    try:
        path = build(args.out, args.wheels)
    except BuildError as exc:
        print(f"kodi_zip: {exc}", file=sys.stderr)
        return 1
    with zipfile.ZipFile(path) as zf:
        count = len(zf.namelist())
    print(f"{path} ({count} files, {path.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
