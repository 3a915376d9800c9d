"""The Kodi host is split by job: one module calls Kodi, the others hold the logic."""
import ast
from pathlib import Path

import pytest

KODI = Path(__file__).resolve().parent.parent / "plugin" / "playbacksync" / "hosts" / "kodi"
KODI_MODULES = ("xbmc", "xbmcaddon", "xbmcgui", "xbmcvfs", "xbmcplugin", "xbmcdrm")


def _imports(path):
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names, tree


def test_only_kodi_api_imports_kodi():
    files = sorted(KODI.glob("*.py"))
    assert {p.name for p in files} >= {"kodi_api.py", "player.py", "service.py", "actions.py"}
    for path in files:
        names, _ = _imports(path)
        uses_kodi = bool(names & set(KODI_MODULES))
        assert uses_kodi == (path.name == "kodi_api.py"), path.name
    assert not (KODI.parent / "kodi_host.py").exists()


@pytest.mark.parametrize("path", sorted(KODI.glob("*.py")), ids=lambda p: p.name)
def test_modules_stay_small_and_talk_to_sync_service_only(path):
    source = path.read_text()
    assert source.count("\n") < 400, f"{path.name} is past ~400 lines: split it by job"
    _, tree = _imports(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("worker", "queue"):
            raise AssertionError(f"{path.name}:{node.lineno} reaches into .{node.attr}: use SyncService's API")
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[-1] == "cli":
            raise AssertionError(f"{path.name} imports cli")
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("queue", "worker"):
            raise AssertionError(f"{path.name}:{node.lineno} imports from .{node.module}: use the app's API")
