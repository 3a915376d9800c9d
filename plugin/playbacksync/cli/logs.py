"""Logging for the command: a private rotating log file, tokens scrubbed from every record."""
from __future__ import annotations

import logging
import logging.handlers
import os
import sys


class _Redact(logging.Filter):
    """Scrubs tokens from every record before any handler writes it."""

    def filter(self, record):
        from ..fsnames import shown
        from ..redact import redact

        record.msg = shown(redact(record.getMessage()))  # a file name that is not UTF-8 cannot break a log
        record.args = None
        return True


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Every log file it opens, the first and each one after a rollover, is 0600."""

    def _open(self):
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return open(fd, self.mode, encoding=self.encoding, errors=self.errors)


def setup_logging(verbose: bool) -> str:
    """Log to playback-sync.log in the user state folder (and stderr with -v). Returns the file's path."""
    from ..paths import state_dir

    folder = state_dir()
    path = os.path.join(folder, "playback-sync.log")
    handler = _PrivateRotatingFileHandler(path, maxBytes=1_000_000, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_Redact())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_playback_sync", False)]:
        root.removeHandler(old)  # main() may run more than once in one process (tests)
        old.close()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    handlers = [handler]
    if verbose:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        console.addFilter(_Redact())
        handlers.append(console)
    for h in handlers:
        h._playback_sync = True
        root.addHandler(h)
    try:
        os.chmod(path, 0o600)
    except OSError:
        pass
    return path
