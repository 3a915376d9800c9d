"""Stream URLs of configured servers, and the item they name.

A URL belongs to a server when scheme, host and port are equal (default
ports filled in; no DNS, so ``localhost`` and ``127.0.0.1`` differ) and the
server's base path is a component prefix of the URL's path. When several
configured servers share an origin, the longest base path owns the URL.
Route names compare case-insensitively (the servers route that way); ids keep
their case, except Jellyfin GUIDs, which are written the canonical way
(32 lower-case hex digits).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, List, Optional, Tuple
from urllib.parse import parse_qsl, unquote, urlsplit

from ..config import ServerConfig

_DEFAULT_PORTS = {"http": 80, "https": 443}
_GUID = re.compile(r"^[0-9a-fA-F]{32}$|^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_EMBY_ID = re.compile(r"^[0-9A-Za-z-]{1,64}$")
_DIGITS = re.compile(r"^[0-9]{1,20}$")
# /Videos/{id}/<x> routes that are not the item's media stream.
_NOT_STREAMS = {
    "subtitles", "trickplay", "attachments", "additionalparts", "alternatesources",
    "index.bif", "subtitles.m3u8", "live_subtitles.m3u8", "lyrics", "remotesearch",
}


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int
    base: Tuple[str, ...]  # base path components

    def text(self) -> str:
        host = "[" + self.host + "]" if ":" in self.host else self.host
        return "%s://%s:%d%s" % (self.scheme, host, self.port, "".join("/" + b for b in self.base))


@dataclass(frozen=True)
class UrlRef:
    """What a stream URL names: an item id, or (Plex) a media part to look up."""

    kind: str  # "item" | "part"
    id: str
    route: str  # the route, ids as placeholders, for messages


def parse_origin(url: str) -> Optional[Origin]:
    """Scheme, host, port and path components of an http(s) URL; None otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    path = tuple(unquote(p) for p in parts.path.split("/") if p)
    return Origin(scheme, parts.hostname.lower().rstrip("."), port or _DEFAULT_PORTS[scheme], path)


def safe_url(url: str) -> str:
    """A URL for messages and logs: no credentials, no query (tokens ride there)."""
    origin = parse_origin(url)
    if origin is None:
        scheme = url.split("://", 1)[0] if "://" in url else ""
        return (scheme + "://…") if scheme else "…"
    return origin.text()


def server_origin(server: ServerConfig) -> Optional[Origin]:
    """Where a server lives. Emby serves its API under /emby and streams with or
    without it, so a configured ``…/emby`` is taken off the base path."""
    o = parse_origin(server.url)
    if o is not None and server.type == "emby" and o.base[-1:] and o.base[-1].lower() == "emby":
        o = Origin(o.scheme, o.host, o.port, o.base[:-1])
    return o


def owners(url: str, servers: Iterable[ServerConfig]) -> List[ServerConfig]:
    """The configured servers a URL belongs to (several only if configured twice)."""
    o = parse_origin(url)
    if o is None:
        return []
    found = []
    for s in servers:
        so = server_origin(s)
        if so is None or (so.scheme, so.host, so.port) != (o.scheme, o.host, o.port):
            continue
        if [b.lower() for b in o.base[: len(so.base)]] == [b.lower() for b in so.base]:
            found.append((len(so.base), s))
    if not found:
        return []
    longest = max(n for n, _ in found)
    chosen = [s for n, s in found if n == longest]
    if len(chosen) > 1:
        # The same server configured for several users: the URL's own token says whose stream it is.
        token = url_token(url)
        mine = [s for s in chosen if token and s.token == token]
        chosen = mine or chosen
    return chosen


# Jellyfin 12.0 clients put the token in ApiKey=, older Jellyfin and Emby in api_key=
# (Jellyfin's AuthorizationContext reads both; 12.0 reads api_key only with legacy auth on).
_TOKEN_PARAMS = ("apikey", "api_key")


def url_token(url: str) -> str:
    """The access token a Jellyfin/Emby stream URL carries in its query, or "". Never log it."""
    try:
        query = urlsplit(url).query
    except ValueError:
        return ""
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name.lower() in _TOKEN_PARAMS and value:
            return value
    return ""


def rest_after_base(url: str, server: ServerConfig) -> Tuple[Tuple[str, ...], str]:
    """Path components after the server's base path, and the raw query."""
    o = parse_origin(url)
    so = server_origin(server)
    assert o is not None and so is not None
    return o.base[len(so.base):], urlsplit(url).query


def item_ref(server_type: str, rest: Tuple[str, ...], query: str = "") -> Optional[UrlRef]:
    """The item (or Plex part) a stream path names, or None if it names none."""
    if server_type == "plex":
        return _plex_ref(rest, query)
    if server_type in ("jellyfin", "emby"):
        return _mb_ref(server_type, rest)
    return None


def _mb_ref(server_type: str, rest: Tuple[str, ...]) -> Optional[UrlRef]:
    low = [p.lower() for p in rest]
    if low[:1] == ["emby"]:  # Emby's /emby prefix (older Jellyfin kept it too)
        rest, low = rest[1:], low[1:]
    if len(rest) < 3:
        return None
    kind, item_id, tail = low[0], rest[1], low[2:]
    if kind in ("videos", "audio"):
        ok = (len(tail) == 1 and tail[0] not in _NOT_STREAMS) or tail[0] in ("hls", "hls1")
        route = "/%s/{id}/%s" % (rest[0], "/".join(rest[2:]) if len(tail) == 1 else rest[2] + "/…")
    elif kind == "items":
        ok = len(tail) == 1 and tail[0] in ("download", "file")
        route = "/%s/{id}/%s" % (rest[0], rest[2])
    else:
        return None
    if not ok:
        return None
    if server_type == "jellyfin":
        if not _GUID.match(item_id):
            return None
        item_id = item_id.replace("-", "").lower()
    elif not _EMBY_ID.match(item_id):
        return None
    return UrlRef("item", item_id, route)


def _plex_ref(rest: Tuple[str, ...], query: str) -> Optional[UrlRef]:
    low = [p.lower() for p in rest]
    if len(rest) == 3 and low[:2] == ["library", "metadata"] and _DIGITS.match(rest[2]):
        return UrlRef("item", rest[2], "/library/metadata/{key}")
    if len(rest) in (4, 5) and low[:2] == ["library", "parts"] and _DIGITS.match(rest[2]):
        # /library/parts/{part}/{changestamp}/{file} or the older /library/parts/{part}/{file}
        if low[3] != "indexes" and (len(rest) == 4 or _DIGITS.match(rest[3])):
            return UrlRef("part", rest[2], "/library/parts/{part}/…")
        return None
    if low[:3] == ["video", ":", "transcode"]:
        # the transcoder names the item in its path= parameter
        # (a path, or a full URL of the server as the transcoder sees it: http://127.0.0.1:32400/library/…);
        # two path= naming different items: which one the transcoder takes is not known, so neither
        found = set()
        for name, value in parse_qsl(query, keep_blank_values=True):
            if name != "path":
                continue
            if value.startswith("/"):
                inner_path = urlsplit(value).path
            elif parse_origin(value) is not None:
                inner_path = urlsplit(value).path
            else:
                continue
            inner = tuple(p for p in unquote(inner_path).split("/") if p)
            ref = _plex_ref(inner, "")
            if ref is not None and ref.kind == "item":
                found.add(ref.id)
        if len(found) == 1:
            return UrlRef("item", found.pop(), "/video/:/transcode/…?path=/library/metadata/{key}")
        return None
    return None
