"""Where Playback Sync keeps its files (platformdirs, app name "playback-sync").

Data (the queue, the item index) goes to the user data folder unless
``PLAYBACK_SYNC_DATA_DIR`` names another; an explicit argument beats both.
Folders we create are private (mode 0700): the queue says what the user watched.
"""
from __future__ import annotations

import os
import tempfile
from typing import Optional

APP_NAME = "playback-sync"
DATA_DIR_ENV = "PLAYBACK_SYNC_DATA_DIR"


def _ensure(path: str) -> str:
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.isdir(path):
        os.makedirs(path, mode=0o700, exist_ok=True)
        # makedirs' mode is filtered by the umask; a private folder must stay private.
        os.chmod(path, 0o700)
    return path


def data_dir(override: Optional[str] = None) -> str:
    """The data folder: ``override``, else $PLAYBACK_SYNC_DATA_DIR, else the platform's."""
    if override:
        return _ensure(os.fspath(override))
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return _ensure(env)
    import platformdirs

    return _ensure(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def config_dir() -> str:
    """The folder for the settings file."""
    import platformdirs

    return _ensure(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def state_dir() -> str:
    """The folder for logs and other state that is not data."""
    import platformdirs

    return _ensure(platformdirs.user_state_dir(APP_NAME, appauthor=False))


def private_file(path: str) -> None:
    """Make a database file and its -wal/-shm/-journal companions readable by the user only
    (what was watched is private). Creates the file 0600 if missing: SQLite gives the
    companions it creates the main file's mode. Problems are left for the open to report."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    except OSError:
        return
    for p in (path, path + "-wal", path + "-shm", path + "-journal"):
        try:
            if os.stat(p).st_mode & 0o077:
                os.chmod(p, 0o600)
        except OSError:
            pass


def write_private(path: str, text: str, prefix: str = ".tmp-") -> None:
    """Replace ``path`` with ``text`` atomically (a temporary file in the same folder, fsynced,
    renamed over it, the folder fsynced), mode 0600: readers see the old file or the new one."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
