"""Real storage faults for tests: a tiny tmpfs (a disk that fills up) that can be
remounted read-only. Needs root (mount); tests skip with the reason otherwise."""
from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest


def _mount(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


@contextlib.contextmanager
def tmpfs(path: Path, size_kb: int = 512):
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tiny tmpfs (a real full / read-only disk)")
    done = _mount("-t", "tmpfs", "-o", f"size={size_kb}k,mode=0700", "tmpfs", str(path))
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        _mount("-o", "remount,rw", str(path))
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount(path: Path, mode: str) -> None:
    done = _mount("-o", f"remount,{mode}", str(path))
    assert done.returncode == 0, done.stderr


def fill(folder: Path) -> Path:
    """Fill the file system holding ``folder`` to the last byte; returns the filler file."""
    filler = Path(folder) / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 16, 4096, 1):  # big chunks, then whatever bytes are left
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler
