"""Token redaction, with no HTTP imports: logging and config loading use it in
every process, and importing ``requests`` for it cost ~70 ms of CPU at start.
``playbacksync.backends.http`` re-exports both names.
"""
from __future__ import annotations

import re
import threading
from typing import Any
from urllib.parse import urlsplit

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


URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def redact_url(url: str) -> str:
    """A URL fit for logs and the screen: no user info, query or fragment (tokens live there)."""
    if not isinstance(url, str) or not URL_SCHEME.match(url):
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return url.split("?", 1)[0].split("#", 1)[0]
    if ":" in host:
        host = f"[{host}]"
    hidden = "?…" if parts.query or parts.fragment else ""
    return f"{parts.scheme}://{host}{port}{parts.path}{hidden}"


def redact_text(text: Any) -> str:
    """``text`` with every URL in it shortened by ``redact_url`` and every token removed."""
    return redact(_URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), str(text)))
