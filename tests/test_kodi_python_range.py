"""The Kodi add-on works on every Python Kodi ships (3.8 to 3.14), from the zip's contents alone.

Each interpreter of pyenv's (3.8 and the newest one here) runs tests/pyrange/zip_scenario.py with
only the built zip's resources/lib and a requests stand-in on sys.path (-I -S, no site-packages):
it creates and migrates a queue, upgrades a file of the previous release (revision 0002), enqueues
and claims, reads Kodi-style flat settings, signs in and has the service sync to a fake Jellyfin
that runs in the project's own venv as a separate process.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from playbacksync import kodi_zip

ROOT = Path(__file__).resolve().parent.parent
PYENV = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
OLD_QUEUE = ROOT / "tests" / "data" / "queue-rev0002.sqlite"


def pyenv_python(prefix: str):
    found = sorted(PYENV.glob(prefix + "*/bin/python"), key=lambda p: [int(x) for x in
                                                                       re.findall(r"\d+", p.parts[-3])])
    return found[-1] if found else None


def newest_python():
    found = [p for p in PYENV.glob("3.*/bin/python") if re.fullmatch(r"3\.\d+\.\d+", p.parts[-3])]
    return max(found, key=lambda p: [int(x) for x in p.parts[-3].split(".")]) if found else None


INTERPRETERS = {"3.8": pyenv_python("3.8."), "newest": newest_python()}


@pytest.fixture(scope="module")
def addon_lib(tmp_path_factory):
    out = tmp_path_factory.mktemp("zip")
    path = kodi_zip.build(out)
    with zipfile.ZipFile(path) as zf:
        zf.extractall(out / "x")
    requests_lib = out / "requests"
    wheels = kodi_zip.fetch_wheels(ROOT / "tests" / "kodi" / "requests-libs.txt", ROOT / "build" / "kodi-test-wheels")
    for name, data in kodi_zip.library_files(wheels):
        target = requests_lib / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return out / "x" / "service.playbacksync" / "resources" / "lib", requests_lib


@pytest.fixture
def jellyfin():
    """The fake Jellyfin in the project's venv, as its own process."""
    proc = subprocess.Popen([sys.executable, "-u", "-m", "tests.fakes.jellyfin", "--port", "0"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        item = url = None
        for line in proc.stdout:
            m = re.search(r"Big Buck Bunny=(\S+)", line)
            item = m.group(1).rstrip(",") if m else item
            m = re.search(r"listening on (\S+)", line)
            if m:
                url = m.group(1)
                break
        assert url and item, "the fake did not start"
        yield url, item, proc
    finally:
        proc.kill()
        proc.wait(10)


@pytest.mark.slow
@pytest.mark.parametrize("which", sorted(INTERPRETERS))
def test_zip_contents_work_on_old_and_new_python(which, addon_lib, jellyfin, tmp_path):
    python = INTERPRETERS[which]
    if python is None:
        pytest.skip(f"no pyenv Python for {which} under {PYENV}")
    lib, requests_lib = addon_lib
    url, item, fake = jellyfin
    done = subprocess.run([str(python), "-I", "-S", str(ROOT / "tests" / "pyrange" / "zip_scenario.py"),
                           str(lib), str(requests_lib), str(tmp_path), url, item, str(OLD_QUEUE)],
                          capture_output=True, text=True, timeout=240, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert result["python"] != "3.11" or which == "newest"
    assert result["from_zip"] and result["compiled"] == []
    assert result["claimed"] == [["i1", "syncing"]]
    head = result["fresh_revision"]
    assert result["old_revision"] == head and int(head[:4]) >= 2
    assert sum(c.get("pending", 0) + c.get("syncing", 0) for c in result["old_counts"].values()) == 2
    assert result["servers"] == [["jellyfin", "jellyfin", True, True]]
    assert result["server_position_ms"] >= 120000
    assert result["stopped_clean"]
    # One schema history: the file the zip's libraries made opens with the mpv side's newer ones.
    from playbacksync.queue import SyncQueue

    queue = SyncQueue(str(tmp_path / "fresh"))
    try:
        counts = queue.counts()["s1"]
    finally:
        queue.close()
    assert counts.get("pending", 0) + counts.get("syncing", 0) == 1
