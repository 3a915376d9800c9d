"""Run the real ``playback-sync`` command in a subprocess (optionally inside another PID namespace)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "plugin"


def command() -> list:
    """The installed console script beside this interpreter, else ``python -m playbacksync.cli``."""
    script = Path(sys.executable).with_name("playback-sync")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "playbacksync.cli"]


def environment(home: Path, **over) -> dict:
    """A child environment whose config, state and data folders all live under ``home``."""
    env = dict(os.environ, PYTHONPATH=str(PLUGIN))
    for var in ("XDG_STATE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        env[var] = str(Path(home) / var.lower())
    env.pop("PLAYBACK_SYNC_CONFIG", None)
    env.pop("PLAYBACK_SYNC_DATA_DIR", None)
    env.update({k: str(v) for k, v in over.items()})
    return env


def playback_sync(*args, home: Path, prefix=(), timeout: float = 90, **env_over) -> subprocess.CompletedProcess:
    """``playback-sync ARGS`` with text output captured; ``prefix`` runs it through e.g. unshare."""
    return subprocess.run([*prefix, *command(), *map(str, args)], capture_output=True, text=True,
                          env=environment(home, **env_over), timeout=timeout)


def in_new_pid_namespace() -> list:
    """A command prefix running the program as PID 1 of a new PID namespace (root only)."""
    return ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"]


def can_unshare() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    return subprocess.run([*in_new_pid_namespace(), "true"], capture_output=True).returncode == 0
