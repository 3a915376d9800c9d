"""Owner locks: telling a dead claimer from a live one without trusting host:pid.

A queue takes an exclusive lock on its own file when it opens,
``<data dir>/queue-owners/<token>.lock``, and holds it for its lifetime (the
file is created under a hidden name, locked, then renamed into place, so it
never appears unlocked). The kernel drops the lock when the process dies,
however it dies. Recovery tries the lock without waiting: if it gets it, the
owner is provably gone and its claims go back to pending; if the lock is held,
the owner is alive, whatever PID namespace it runs in and whichever process
now has its old PID. Locks are ``flock`` on POSIX (they conflict between two
queues of one process too) and ``msvcrt.locking`` on Windows.

The same files tell an open that a process died with the queue open (an
unclean shutdown: the full integrity check runs) and whether another process
has it open now (then its -wal is in use and is not checked frame by frame).

A claim whose owner has no lock file was made by a version without owner locks
(or on a file system that refused the lock): for those the old host:pid check
and the lease decide.
"""
from __future__ import annotations

import errno
import logging
import os
import time
from typing import Optional, Tuple

log = logging.getLogger(__name__)

FOLDER = "queue-owners"
_SUFFIX = ".lock"

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt


def _try_lock(fd: int) -> bool:
    """Take an exclusive lock on ``fd`` without waiting; False if someone holds it."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES, errno.EDEADLK):
            return False
        raise
    return True


def lock_path(folder: str, token: str) -> str:
    return os.path.join(folder, FOLDER, token + _SUFFIX)


class OwnerLock:
    """The lock this process holds while it may have claims (see the module docstring)."""

    def __init__(self, folder: str, token: str):
        self.folder = folder
        self.path = lock_path(folder, token)
        self._fd: Optional[int] = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def hold(self) -> bool:
        """Take the lock (once); False if this file system cannot lock (then host:pid decides)."""
        if self._fd is not None:
            return True
        where = os.path.dirname(self.path)
        tmp = os.path.join(where, "." + os.path.basename(self.path))
        fd = None
        try:
            os.makedirs(where, mode=0o700, exist_ok=True)
            if fcntl is not None:
                fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
                if not _try_lock(fd):
                    raise OSError(errno.EWOULDBLOCK, "lock taken")
                os.write(fd, f"{os.getpid()}\n".encode())
                os.replace(tmp, self.path)  # appears already locked
            else:  # Windows cannot rename an open file: create it in place
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                if not _try_lock(fd):
                    raise OSError(errno.EWOULDBLOCK, "lock taken")
        except OSError as exc:
            if fd is not None:
                os.close(fd)
            log.warning("cannot hold the queue owner lock %s (%s): claims of a killed process will be "
                        "recovered when their lease runs out", self.path, exc.strerror or exc)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        """Remove the file and drop the lock (only when this queue holds no claims)."""
        if self._fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None


def owner_gone(folder: str, token: str) -> Optional[bool]:
    """True: the owner's lock is free, it is dead. False: it is alive (or we cannot tell).

    None: no lock file (an owner from before owner locks).
    """
    if not token or os.sep in token or (os.altsep and os.altsep in token) or token.startswith("."):
        return None
    try:
        fd = os.open(lock_path(folder, token), os.O_RDWR)
    except FileNotFoundError:
        return None
    except OSError:
        return False  # cannot tell: the lease decides
    try:
        return _try_lock(fd)
    except OSError:
        return False
    finally:
        os.close(fd)  # closing our descriptor drops our lock at once


def sweep(folder: str, keep=()) -> int:
    """Delete the lock files of owners that are gone; how many.

    ``keep``: tokens that still own claims (their file decides when they are
    recovered). Call it inside the queue's write transaction, so no claim is
    made between the choice of ``keep`` and the sweep.
    """
    where = os.path.join(folder, FOLDER)
    try:
        names = os.listdir(where)
    except OSError:
        return 0
    removed = 0
    for name in names:
        if not name.endswith(_SUFFIX) or name[:-len(_SUFFIX)] in keep:
            continue
        path = os.path.join(where, name)
        if name.startswith("."):  # a lock being created, or left by a process killed meanwhile
            try:
                if time.time() - os.stat(path).st_mtime < 60:
                    continue
            except OSError:
                continue
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            continue
        try:
            if _try_lock(fd):
                os.unlink(path)
                removed += 1
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def survey(folder: str) -> Tuple[int, int]:
    """(owners alive, owners gone) among the lock files in ``folder``: who has the queue open,
    and how many processes died with it open (an unclean shutdown)."""
    where = os.path.join(folder, FOLDER)
    try:
        names = os.listdir(where)
    except OSError:
        return 0, 0
    alive = gone = 0
    for name in names:
        if name.endswith(_SUFFIX) and not name.startswith("."):
            verdict = owner_gone(folder, name[:-len(_SUFFIX)])
            if verdict is True:
                gone += 1
            elif verdict is False:
                alive += 1
    return alive, gone
