"""kodi-addon-checker (Team Kodi's repository checks) passes on the built add-on: nexus, omega, piers if known.

The checker lives in its own venv (its pins clash with ours):
    python3 -m venv .venv-kodichecker && .venv-kodichecker/bin/pip install kodi-addon-checker==0.0.36
or set KODI_ADDON_CHECKER_PYTHON to another interpreter that has it. It runs
offline (see tests/kodi/run_addon_checker.py), so it cannot confirm that
script.module.requests exists in the official repository: that one warning is expected.
"""
from __future__ import annotations

import os
import re
import subprocess
import zipfile
from pathlib import Path

import pytest

from playbacksync import kodi_zip

ROOT = Path(__file__).resolve().parent.parent
WRAPPER = ROOT / "tests" / "kodi" / "run_addon_checker.py"
CHECKER_PYTHON = Path(os.environ.get("KODI_ADDON_CHECKER_PYTHON", ROOT / ".venv-kodichecker" / "bin" / "python"))
INSTALL = ("python3 -m venv .venv-kodichecker && "
           ".venv-kodichecker/bin/pip install kodi-addon-checker==0.0.36")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _run_checker(addon_dir: Path, branch: str) -> subprocess.CompletedProcess:
    if not CHECKER_PYTHON.exists():
        pytest.fail(f"kodi-addon-checker is not installed at {CHECKER_PYTHON}: run `{INSTALL}` "
                    "(or set KODI_ADDON_CHECKER_PYTHON)")
    return subprocess.run([str(CHECKER_PYTHON), str(WRAPPER), "--branch", branch, addon_dir.name],
                          cwd=addon_dir.parent, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def addon_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("checker")
    with zipfile.ZipFile(kodi_zip.build(out)) as zf:
        zf.extractall(out / "x")
    return out / "x" / "service.playbacksync"


def _known_branches():
    """The branches this checker knows (piers only in newer releases)."""
    if not CHECKER_PYTHON.exists():
        return ["nexus", "omega"]
    done = subprocess.run([str(CHECKER_PYTHON), "-c", "import kodi_addon_checker as k; print(*k.ValidKodiVersions)"],
                          capture_output=True, text=True, timeout=60)
    return done.stdout.split() if done.returncode == 0 else ["nexus", "omega"]


BRANCHES = [b for b in ("nexus", "omega", "piers") if b in _known_branches()]


def test_checker_knows_nexus_and_omega():
    assert {"nexus", "omega"} <= set(BRANCHES)


@pytest.mark.parametrize("branch", BRANCHES)
def test_addon_checker_has_no_errors(addon_dir, branch):
    done = _run_checker(addon_dir, branch)
    output = ANSI.sub("", done.stdout + done.stderr)
    errors = [line for line in output.splitlines() if line.startswith("ERROR") and "We found" not in line]
    assert done.returncode == 0 and not errors, output
    assert "Valid XML file found" in output  # it really checked addon.xml against the nexus schema
    warnings = [line for line in output.splitlines() if line.startswith("WARN") and "We found" not in line]
    # Offline the official index is empty; every other warning is a real finding.
    assert warnings == ["WARN: Required dependency script.module.requests is not available in current repository"], \
        output


def test_addon_checker_catches_a_broken_addon(addon_dir, tmp_path):
    """The offline wrapper still fails an add-on with a real problem (it is not a no-op)."""
    broken = tmp_path / "service.playbacksync"
    broken.mkdir()
    text = (addon_dir / "addon.xml").read_text().replace('<import addon="xbmc.python" version="3.0.1"/>', "")
    (broken / "addon.xml").write_text(text.replace("<extension point=\"xbmc.service\"", "<extension point=\"xbmc.nonsense\""))
    done = _run_checker(broken, "nexus")
    assert done.returncode != 0, ANSI.sub("", done.stdout)
