"""Build a static Kodi repository: ``python -m playbacksync.kodi_repo --url URL [--out DIR]``.

The folder it writes can be served by any static web host at ``URL``::

    addons.xml                       every add-on's addon.xml, in one <addons> list
    addons.xml.md5                   its MD5 (Kodi reads it to see whether anything changed)
    service.playbacksync/service.playbacksync-<version>.zip   (+ icon.png, fanart.png)
    repository.playbacksync/repository.playbacksync-<version>.zip

``repository.playbacksync`` is the add-on a user installs once ("Install from
zip file"); it points Kodi at ``URL``, and from then on Kodi installs and
updates Playback Sync from there like from its own repository. Old versions'
zips already in the folder stay (Kodi may offer a rollback to them).
``--extra ZIP`` adds another add-on's zip (the tests add script.module.requests).
"""
from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Iterable, List, Optional
from xml.sax.saxutils import escape

from . import kodi_zip

REPO_ID = "repository.playbacksync"
REPO_VERSION = "1.0.0"
_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>\s*")


def repository_addon_xml(url: str) -> str:
    base = url.rstrip("/")
    if not re.match(r"^https?://[^/\s]+", base):
        raise kodi_zip.BuildError(f"the repository URL must be http(s)://host[/path], not {url!r}")
    u = escape(base)
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<addon id="{REPO_ID}" name="Playback Sync repository" version="{REPO_VERSION}" provider-name="Playback Sync contributors">
  <extension point="xbmc.addon.repository" name="Playback Sync repository">
    <dir>
      <info compressed="false">{u}/addons.xml</info>
      <checksum>{u}/addons.xml.md5</checksum>
      <datadir zip="true">{u}/</datadir>
    </dir>
  </extension>
  <extension point="xbmc.addon.metadata">
    <summary lang="en_GB">Installs and updates Playback Sync</summary>
    <description lang="en_GB">The repository of the Playback Sync add-on, which keeps Plex, Jellyfin and Emby up to date with what you watch in Kodi. Install Playback Sync from it under Add-ons, Install from repository; Kodi then keeps it up to date.</description>
    <platform>all</platform>
    <license>GPL-3.0-or-later</license>
    <assets>
      <icon>icon.png</icon>
    </assets>
  </extension>
</addon>
"""


def _write_zip(target: Path, top: str, files: Iterable) -> None:
    tmp = target.with_name(target.name + ".part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files:
            info = zipfile.ZipInfo(f"{top}/{name}", date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    tmp.replace(target)


def _addon_of(zip_path: Path):
    """(id, version, addon.xml text) of an add-on zip with one top folder."""
    with zipfile.ZipFile(zip_path) as zf:
        tops = {n.split("/")[0] for n in zf.namelist()}
        if len(tops) != 1:
            raise kodi_zip.BuildError(f"{zip_path}: an add-on zip holds one top folder, not {sorted(tops)}")
        top = tops.pop()
        xml = zf.read(f"{top}/addon.xml").decode("utf-8")
        assets = {n.rsplit("/", 1)[-1]: zf.read(n) for n in zf.namelist()
                  if n in (f"{top}/resources/icon.png", f"{top}/resources/fanart.png", f"{top}/icon.png")}
    m = re.search(r'<addon\b[^>]*\bversion="([^"]+)"', xml)
    if not m:
        raise kodi_zip.BuildError(f"{zip_path}: addon.xml has no version")
    return top, m.group(1), xml, assets


def build(url: str, out_dir: Path, *, extra: Iterable[Path] = (), version: Optional[str] = None,
          wheels_dir: Optional[Path] = None) -> Path:
    """Write (or add to) the repository folder ``out_dir`` and return it.

    ``version`` overrides the add-on's version (to test updates); by default addon.xml's.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    root = kodi_zip.repo_root()
    addon_zip = kodi_zip.build(out / ".build", wheels_dir, version=version)
    repo_zip = out / ".build" / f"{REPO_ID}-{REPO_VERSION}.zip"
    _write_zip(repo_zip, REPO_ID, [("addon.xml", repository_addon_xml(url).encode()),
                                   ("icon.png", (root / "resources" / "icon.png").read_bytes())])
    for source in [addon_zip, repo_zip, *map(Path, extra)]:
        addon_id, addon_version, _, assets = _addon_of(source)
        folder = out / addon_id
        folder.mkdir(exist_ok=True)
        shutil.copyfile(source, folder / f"{addon_id}-{addon_version}.zip")
        for name, data in assets.items():
            (folder / name).write_bytes(data)
    shutil.rmtree(out / ".build")
    _write_index(out)
    return out


def _version_key(version: str) -> List:
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-+~]", version)]


def _write_index(out: Path) -> None:
    """addons.xml lists the newest version of each add-on in the folder; addons.xml.md5 its checksum."""
    entries = []
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        zips = sorted(folder.glob(f"{folder.name}-*.zip"),
                      key=lambda p: _version_key(p.name[len(folder.name) + 1:-4]))
        if zips:
            _, _, xml, _ = _addon_of(zips[-1])
            entries.append(_DECLARATION.sub("", xml).strip())
    text = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<addons>\n' + "\n".join(entries) + "\n</addons>\n"
    data = text.encode("utf-8")
    tmp = out / "addons.xml.part"
    tmp.write_bytes(data)
    tmp.replace(out / "addons.xml")
    (out / "addons.xml.md5").write_text(hashlib.md5(data).hexdigest())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m playbacksync.kodi_repo",
                                     description="Build a static Kodi repository folder for Playback Sync.")
    parser.add_argument("--url", required=True, help="where the folder will be served, e.g. https://example.org/kodi")
    parser.add_argument("--out", default=None, help="the repository folder (default: dist/kodi-repo)")
    parser.add_argument("--extra", action="append", default=[], help="another add-on zip to list (repeatable)")
    parser.add_argument("--version", default=None, help="build the add-on as this version (tests of updates)")
    args = parser.parse_args(argv)
    try:
        out = build(args.url, Path(args.out) if args.out else kodi_zip.repo_root() / "dist" / "kodi-repo",
                    extra=[Path(e) for e in args.extra], version=args.version)
    except kodi_zip.BuildError as exc:
        print(f"kodi_repo: {exc}", file=sys.stderr)
        return 1
    print(f"{out}: serve this folder at {args.url.rstrip('/')}/ ; users install "
          f"{REPO_ID}/{REPO_ID}-{REPO_VERSION}.zip once (Install from zip file)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
