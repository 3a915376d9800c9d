"""``playback-sync install mpv`` / ``uninstall mpv``: the small script that brings sync to any mpv.

The script (made here from lua/unload_helper.lua and lua/agent_starter.lua,
with the command that runs this Playback Sync written in) goes into the
``scripts`` folder of each mpv config folder found: ``--mpv-config-dir DIR``
if given, else ``$MPV_HOME`` if set, else ``~/.config/mpv`` (on Windows
``%APPDATA%\\mpv`` and a ``portable_config`` next to mpv.exe), plus
Celluloid's own scripts folder when Celluloid is set up.

A manifest in the state folder lists every file and folder install made,
so uninstall removes exactly those (a file the user changed since is left,
and said so), and install twice changes nothing.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from ... import __version__
from ...paths import state_dir
from .common import DEFAULT_KEYS

SCRIPT_NAME = "playback-sync.lua"
MANIFEST = "mpv-install.json"
_LUA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lua")
_MARK = "-- Playback Sync for mpv, installed by `playback-sync install mpv`"


@dataclass(frozen=True)
class Target:
    """A folder mpv (or a front-end) reads scripts from, and for whom."""

    player: str
    scripts: str


def _lua_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def agent_command(config: Optional[str] = None, data_dir: Optional[str] = None) -> List[str]:
    """How the script starts this Playback Sync: this Python, this package (and the folders named at install)."""
    command = [sys.executable, "-m", "playbacksync.cli"]
    if config:
        command += ["--config", os.path.abspath(config)]
    if data_dir:
        command += ["--data-dir", os.path.abspath(data_dir)]
    return command


def script_text(command: List[str]) -> str:
    with open(os.path.join(_LUA, "unload_helper.lua"), encoding="utf-8") as f:
        unload = f.read()
    with open(os.path.join(_LUA, "agent_starter.lua"), encoding="utf-8") as f:
        starter = f.read()
    keys = ", ".join(f'[{_lua_string(a)}] = {_lua_string(k)}' for a, k in DEFAULT_KEYS.items())
    return (f"{_MARK} (version {__version__}).\n"
            "-- `playback-sync uninstall mpv` removes it. Keys: script-binding playback_sync/<action> in input.conf.\n"
            f"local VERSION = {_lua_string(__version__)}\n"
            f"local COMMAND = {{{', '.join(_lua_string(p) for p in command)}}}\n"
            f"local KEYS = {{{keys}}}\n\n{unload}\n{starter}")


def script_version(path: str) -> Optional[str]:
    """The version written in an installed script, or None if the file is not ours."""
    try:
        with open(path, encoding="utf-8") as f:
            first = f.readline()
    except (OSError, UnicodeDecodeError):
        return None
    if not first.startswith(_MARK):
        return None
    return first.rsplit("(version ", 1)[-1].rstrip(").\n") or None


# -- where --------------------------------------------------------------------------

def _config_home() -> str:
    return os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")


def mpv_config_dirs(explicit: Optional[str] = None) -> List[str]:
    """mpv's config folders, as mpv itself looks for them."""
    if explicit:
        return [os.path.abspath(os.path.expanduser(explicit))]
    if os.environ.get("MPV_HOME"):
        return [os.path.abspath(os.path.expanduser(os.environ["MPV_HOME"]))]
    if os.name == "nt":
        found = [os.path.join(os.environ.get("APPDATA") or os.path.expanduser("~"), "mpv")]
        exe = shutil.which("mpv")
        if exe:
            portable = os.path.join(os.path.dirname(os.path.abspath(exe)), "portable_config")
            if os.path.isdir(portable):
                found.append(portable)
        return found
    return [os.path.join(_config_home(), "mpv")]


def celluloid_scripts() -> Optional[str]:
    """Celluloid's scripts folder, when Celluloid is set up (it does not read mpv's)."""
    for base in (os.path.join(_config_home(), "celluloid"),
                 os.path.join(os.path.expanduser("~"), ".var", "app", "io.github.celluloid_player.Celluloid",
                              "config", "celluloid")):
        if os.path.isdir(base):
            return os.path.join(base, "scripts")
    return None


def targets(explicit_dir: Optional[str] = None) -> List[Target]:
    found = [Target("mpv", os.path.join(d, "scripts")) for d in mpv_config_dirs(explicit_dir)]
    celluloid = None if explicit_dir else celluloid_scripts()
    if celluloid:
        found.append(Target("Celluloid", celluloid))
    return found


FRONT_ENDS = (
    "IINA: turn on Settings > Advanced > \"Use config directory\" and pick ~/.config/mpv; it then loads the script.",
    "mpv.net: run `playback-sync install mpv --mpv-config-dir %APPDATA%\\mpv.net` (its own config folder).",
    "SMPlayer: add `--script={script}` under Preferences > Advanced > Options for mpv; the script uses "
    "SMPlayer's own IPC socket.",
)


# -- manifest -------------------------------------------------------------------------

def _manifest_path() -> str:
    return os.path.join(state_dir(), MANIFEST)


def load_manifest() -> Dict:
    try:
        with open(_manifest_path(), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {"files": {}, "dirs": []}
    return {"files": dict(data.get("files") or {}), "dirs": list(data.get("dirs") or [])}


def _save_manifest(manifest: Dict) -> None:
    path = _manifest_path()
    if not manifest["files"] and not manifest["dirs"]:
        if os.path.exists(path):
            os.remove(path)
        return
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _file_digest(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


# -- install / uninstall ------------------------------------------------------------

def install(explicit_dir: Optional[str] = None, command: Optional[List[str]] = None) -> Tuple[List[str], bool]:
    """Put the script in place. Returns (lines to print, ok)."""
    text = script_text(command or agent_command())
    digest = _digest(text)
    manifest = load_manifest()
    lines, ok = [], True
    for target in targets(explicit_dir):
        path = os.path.join(target.scripts, SCRIPT_NAME)
        current = _file_digest(path)
        if current == digest:
            manifest["files"][path] = digest
            lines.append(f"{target.player}: already installed: {path}")
            continue
        if current is not None and path not in manifest["files"] and script_version(path) is None:
            lines.append(f"{target.player}: {path} exists and is not Playback Sync's: left alone")
            ok = False
            continue
        missing = []
        folder = target.scripts
        while not os.path.isdir(folder):
            missing.append(folder)
            folder = os.path.dirname(folder)
        try:
            for folder in reversed(missing):
                os.mkdir(folder)
                manifest["dirs"].append(folder)
            tmp = path + ".playback-sync-tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, path)
        except OSError as exc:
            lines.append(f"{target.player}: could not write {path}: {exc}")
            ok = False
            continue
        manifest["files"][path] = digest
        lines.append(f"{target.player}: {'updated' if current else 'installed'} {path}")
    _save_manifest(manifest)
    script = next(iter(manifest["files"]), os.path.join(targets(explicit_dir)[0].scripts, SCRIPT_NAME))
    lines.append("Every mpv started from now on syncs (a file manager's \"Open with mpv\", a terminal, "
                 "Celluloid). Other front-ends:")
    lines += ["  " + hint.format(script=script) for hint in FRONT_ENDS]
    return lines, ok


def uninstall() -> Tuple[List[str], bool]:
    """Remove what install added (files unchanged since, folders it made that are empty again)."""
    manifest = load_manifest()
    lines, ok = [], True
    kept: Dict[str, str] = {}
    for path, digest in manifest["files"].items():
        current = _file_digest(path)
        if current is None:
            lines.append(f"already gone: {path}")
        elif current != digest:
            lines.append(f"{path} was changed since install: left in place")
            kept[path] = digest
            ok = False
        else:
            os.remove(path)
            lines.append(f"removed {path}")
    left_dirs = []
    for folder in reversed(manifest["dirs"]):
        try:
            os.rmdir(folder)
            lines.append(f"removed folder {folder}")
        except FileNotFoundError:
            pass
        except OSError:
            left_dirs.append(folder)  # something else lives there now
    _save_manifest({"files": kept, "dirs": list(reversed(left_dirs))})
    if not manifest["files"] and not manifest["dirs"]:
        lines.append("Playback Sync's mpv script is not installed.")
    return lines, ok


def installed() -> List[Tuple[str, Optional[str]]]:
    """(path, version) of each installed script (version None: changed since install, or not readable)."""
    return [(path, script_version(path) if _file_digest(path) == digest else None)
            for path, digest in load_manifest()["files"].items() if os.path.exists(path)]
