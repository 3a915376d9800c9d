"""Token redaction, with no HTTP imports: logging and config loading use it in
every process, and importing ``requests`` for it cost ~70 ms of CPU at start.
``playbacksync.backends.http`` re-exports both names.
"""
from __future__ import annotations

import re
import threading
from typing import Any

_known_secrets: "set[str]" = set()
_secrets_lock = threading.Lock()

_PATTERNS = (
    # name=value / name: value / "name": "value" for the token-bearing names
    re.compile(r'(?i)((?:X-Plex-Token|X-Emby-Token|X-MediaBrowser-Token|api_key|apikey|access_?token|AccessToken)'
               r'''["']?\s*[=:]\s*["']?)([^&\s"',;}<>]+)'''),
    # Token="…" inside a MediaBrowser/Emby Authorization header
    re.compile(r'(?i)(\bToken\s*=\s*")([^"]*)'),
    re.compile(r"(?i)(\bToken\s*=\s*)([^\"&,;\s][^&,;\s]*)"),
)


def register_secret(value: str) -> None:
    """Remember a token so ``redact`` removes it wherever it appears."""
    if value and len(value) >= 6:  # shorter strings would mangle ordinary words
        with _secrets_lock:
            _known_secrets.add(value)


def redact(text: Any) -> str:
    """``text`` with every token removed (known values and token-shaped fields)."""
    s = str(text)
    with _secrets_lock:
        secrets = sorted(_known_secrets, key=len, reverse=True)
    for v in secrets:
        if v in s:
            s = s.replace(v, "***")
    for rx in _PATTERNS:
        s = rx.sub(r"\1***", s)
    return s
