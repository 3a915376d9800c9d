"""`make kodi-repo`: a static Kodi repository folder (addons.xml, its MD5, versioned zips, the repository add-on)."""
from __future__ import annotations

import hashlib
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest

from playbacksync import kodi_repo, kodi_zip

ROOT = Path(__file__).resolve().parent.parent
URL = "https://media.example.org/kodi"


def _index(folder: Path):
    data = (folder / "addons.xml").read_bytes()
    assert (folder / "addons.xml.md5").read_text().strip() == hashlib.md5(data).hexdigest()
    return {a.get("id"): a for a in ET.fromstring(data).findall("addon")}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    out = tmp_path_factory.mktemp("repo")
    kodi_repo.build(URL, out)
    return out


def test_repository_layout_and_checksum(repo):
    addons = _index(repo)
    assert set(addons) == {"service.playbacksync", kodi_repo.REPO_ID}
    for addon_id, entry in addons.items():
        zip_path = repo / addon_id / f"{addon_id}-{entry.get('version')}.zip"
        with zipfile.ZipFile(zip_path) as zf:
            assert {n.split("/")[0] for n in zf.namelist()} == {addon_id}
            inside = ET.fromstring(zf.read(f"{addon_id}/addon.xml"))
        assert inside.get("version") == entry.get("version") and inside.get("id") == addon_id
    assert (repo / "service.playbacksync" / "icon.png").is_file()


def test_the_repository_addon_points_at_the_url_given(repo):
    entry = _index(repo)[kodi_repo.REPO_ID]
    ext = entry.find("extension[@point='xbmc.addon.repository']/dir")
    assert ext.find("info").text == f"{URL}/addons.xml"
    assert ext.find("checksum").text == f"{URL}/addons.xml.md5"
    assert ext.find("datadir").text == f"{URL}/" and ext.find("datadir").get("zip") == "true"


def test_a_second_build_adds_the_new_version_and_lists_it(tmp_path):
    kodi_repo.build(URL, tmp_path)
    old = _index(tmp_path)["service.playbacksync"].get("version")
    kodi_repo.build(URL, tmp_path, version="9.8.7")
    assert _index(tmp_path)["service.playbacksync"].get("version") == "9.8.7"
    zips = sorted(p.name for p in (tmp_path / "service.playbacksync").glob("*.zip"))
    assert zips == sorted([f"service.playbacksync-{old}.zip", "service.playbacksync-9.8.7.zip"])
    with zipfile.ZipFile(tmp_path / "service.playbacksync" / "service.playbacksync-9.8.7.zip") as zf:
        init = zf.read("service.playbacksync/resources/lib/playbacksync/__init__.py").decode()
    assert '__version__ = "9.8.7"' in init


@pytest.mark.parametrize("url", ["", "ftp://x/y", "example.org/kodi", "http:// spaces"])
def test_a_bad_url_is_refused(url, tmp_path):
    with pytest.raises(kodi_zip.BuildError, match="URL"):
        kodi_repo.repository_addon_xml(url)


def test_make_kodi_repo_takes_the_url_as_a_build_setting(tmp_path):
    done = subprocess.run(["make", "-n", "kodi-repo", "REPO_URL=https://h.example/r"], cwd=ROOT,
                          capture_output=True, text=True)
    assert "playbacksync.kodi_repo --url \"https://h.example/r\"" in done.stdout, done.stdout
    done = subprocess.run([sys.executable, "-m", "playbacksync.kodi_repo", "--url", "nope", "--out", str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "URL" in done.stderr
