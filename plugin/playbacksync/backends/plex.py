"""Plex Media Server client, plus the plex.tv PIN sign-in helpers.

Follows the 2025 PMS API description: progress through ``POST /:/timeline``,
played/unplayed through ``PUT /:/scrobble`` and ``PUT /:/unscrobble``, state
from ``/library/metadata/{ratingKey}``. The token travels only in the
``X-Plex-Token`` header; Plex would also take it in the query string, where
proxies and logs keep it.
"""
from __future__ import annotations

import logging
import platform
import time
import uuid
from typing import Any, Callable, Dict, Iterator, Optional, Sequence, Tuple
from urllib.parse import quote

from .. import __version__
from ..changes import PROGRESS, UNWATCHED, WATCHED, Change
from ..config import ServerConfig
from . import http
from .base import (
    Backend,
    IndexedItem,
    ItemState,
    PermanentError,
    ServerInfo,
    TransientError,
    chunks,
)

log = logging.getLogger(__name__)

PRODUCT = "Playback Sync"
LIBRARY_ID = "com.plexapp.plugins.library"
PLEX_TV = "https://plex.tv"
LINK_URL = "https://plex.tv/link"  # where the viewer types the PIN code
# Section type -> the mediaQuery type of its playable items (movie 1, episode 4).
_LEAF_TYPE = {"movie": 1, "show": 4}
_PROVIDERS = ("imdb", "tmdb", "tvdb")
_KINDS = {"movie": "movie", "episode": "episode", "clip": "video", "show": "series", "season": "season"}
PART_WALK_INTERVAL = 300.0  # seconds between library walks for unknown part ids
PLEX_WATCHED_SHARE = 0.9  # the server's default "video played threshold": a timeline past it counts a view
REPLAY_AGE_S = 60.0  # a progress change older than this is a replay, sent as an offline timeline


def client_identifier(server: ServerConfig) -> str:
    """A stable X-Plex-Client-Identifier: the configured device id, else one derived from the server id."""
    if server.device_id:
        return server.device_id
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"playbacksync:{uuid.getnode()}:{server.id}"))


def plex_headers(client_id: str, token: str = "") -> Dict[str, str]:
    headers = {
        "Accept": "application/json",
        "X-Plex-Client-Identifier": client_id,
        "X-Plex-Product": PRODUCT,
        "X-Plex-Version": __version__,
        "X-Plex-Device": platform.system() or "Unknown",
        "X-Plex-Platform": platform.system() or "Unknown",
        "X-Plex-Device-Name": f"{PRODUCT} ({platform.node() or 'host'})",
    }
    if token:
        headers["X-Plex-Token"] = token
    return headers


def provider_ids(guids: Any) -> Dict[str, str]:
    """``Guid[]`` entries such as ``imdb://tt0133093`` -> ``{"imdb": "tt0133093"}``."""
    found: Dict[str, str] = {}
    for guid in guids or ():
        gid = str((guid or {}).get("id", "")) if isinstance(guid, dict) else ""
        scheme, sep, value = gid.partition("://")
        scheme = scheme.lower()
        if sep and value and scheme in _PROVIDERS:
            found.setdefault(scheme, value)
    return found


def _int(value: Any, default: Optional[int] = None) -> Optional[int]:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


NotFoundError = http.NotFoundError  # 404: a missing item is an answer, not a failure


class PlexBackend(Backend):
    """One Plex Media Server, as the user the token belongs to."""

    def __init__(self, server: ServerConfig, *, clock: Callable[[], float] = time.monotonic):
        self.server = server
        self._clock = clock
        self._walked_at = float("-inf")
        self.client_id = client_identifier(server)
        self.http = http.HttpClient(server, headers=plex_headers(self.client_id, server.token))
        self._part_items: Dict[int, str] = {}  # part id -> ratingKey, filled as items are seen
        # ratingKey -> (made at, duration s) of a position we sent past the server's threshold:
        # Plex counted that view already, so the same viewing's watched mark must not count another.
        self._counted_by_position: Dict[str, Tuple[float, float]] = {}

    # --- transport -------------------------------------------------------
    def _container(self, method: str, path: str, params: Optional[dict] = None,
                   *, auth: bool = True) -> Dict[str, Any]:
        # A None header value drops the session's token for this one request.
        body = self.http.request(method, path, params=params,
                                 headers=None if auth else {"X-Plex-Token": None})
        container = body.get("MediaContainer") if isinstance(body, dict) else None
        if not isinstance(container, dict):
            raise TransientError(f"Plex answered {method} {path} without a MediaContainer")
        return container

    def _send(self, method: str, path: str, params: dict) -> None:
        self.http.request(method, path, params=params, expect_json=False)

    def _metadata(self, rating_key: str) -> Optional[Dict[str, Any]]:
        try:
            container = self._container("GET", f"/library/metadata/{_quote(rating_key)}")
        except NotFoundError:
            return None
        items = container.get("Metadata") or []
        return items[0] if items and isinstance(items[0], dict) else None

    # --- Backend contract ---------------------------------------------------
    def check(self) -> ServerInfo:
        identity = self._container("GET", "/identity", auth=False)
        # /identity answers anyone; the root needs a valid token, so a bad one is an AuthError here.
        root = self._container("GET", "/")
        machine_id = str(identity.get("machineIdentifier") or root.get("machineIdentifier") or "")
        return ServerInfo(
            name=str(root.get("friendlyName") or machine_id or self.server.id),
            server_id=machine_id,
            version=str(identity.get("version") or root.get("version") or ""),
            product="Plex Media Server",
        )

    def apply(self, change: Change) -> None:
        key = str(change.media_item_id)
        if change.change_type == WATCHED:
            made, length = self._counted_by_position.pop(key, (None, 0.0))
            if made is not None and 0 <= change.created_at - made <= max(length, 60.0):
                log.info("Plex item %s: the position sent for this viewing already counted the view", key)
                return
            self._send("PUT", "/:/scrobble", {"identifier": LIBRARY_ID, "key": key})
        elif change.change_type == UNWATCHED:
            self._send("PUT", "/:/unscrobble", {"identifier": LIBRARY_ID, "key": key})
        elif change.change_type == PROGRESS:
            self._report_progress(key, change)
        else:  # Change validates its type; this guards against a future one.
            raise PermanentError(f"Plex cannot apply {change.change_type!r}")

    def _report_progress(self, key: str, change: Change) -> None:
        if change.position_ms is None or change.position_ms < 0:
            raise PermanentError("progress change without a position")
        duration = change.duration_ms
        if not duration:
            item = self._metadata(key)
            if item is None:
                raise NotFoundError(f"Plex has no item {key}")
            duration = _int(item.get("duration"))
        params = {
            "ratingKey": key,
            "key": f"/library/metadata/{key}",
            # "stopped": the change may be replayed long after playback, so no live session is opened.
            "state": "stopped",
            "time": int(change.position_ms),
        }
        if duration:
            params["duration"] = int(duration)
        if change.created_at and time.time() - change.created_at > REPLAY_AGE_S:
            # A replay after an offline spell: the form Plex's sync clients use, so the server
            # records when it really happened.
            params.update(offline=1, updated=int(change.created_at))
        self._send("POST", "/:/timeline", params)
        if duration and change.position_ms >= PLEX_WATCHED_SHARE * duration:
            self._counted_by_position[key] = (change.created_at, duration / 1000)

    def report_playback(self, state: str, item_id: str, position_ms: int, *, duration_ms: Optional[int],
                        paused: bool, play_session_id: str) -> None:
        """A live timeline (playing / paused / stopped), one X-Plex-Session-Identifier per viewing."""
        key = str(item_id)
        params: Dict[str, Any] = {"ratingKey": key, "key": f"/library/metadata/{key}",
                                  "state": "stopped" if state == "stopped" else ("paused" if paused else "playing"),
                                  "time": max(0, int(position_ms))}
        if duration_ms:
            params["duration"] = int(duration_ms)
        self.http.request("POST", "/:/timeline", params=params, expect_json=False,
                          headers={"X-Plex-Session-Identifier": play_session_id})

    def read_state(self, item_id: str) -> ItemState:
        item = self._metadata(str(item_id))
        if item is None:
            raise NotFoundError(f"Plex has no item {item_id}")
        return _state(item)

    def item_states(self, item_ids: Sequence[str]) -> Dict[str, ItemState]:
        """One GET /library/metadata/{k1,k2,…} per chunk (Plex takes a comma list of rating keys)."""
        out: Dict[str, ItemState] = {}
        for keys in chunks([str(k) for k in item_ids], self.STATES_PER_REQUEST):
            try:
                container = self._container("GET", "/library/metadata/" + ",".join(_quote(k) for k in keys))
            except NotFoundError:  # none of them exists any more
                continue
            for item in container.get("Metadata") or []:
                if isinstance(item, dict) and item.get("ratingKey") is not None:
                    out[str(item["ratingKey"])] = _state(item)
        return out

    def get_item(self, item_id: str) -> Optional[IndexedItem]:
        # includeGuids: the provider ids confirm an identification (python-plexapi asks the same on reload)
        try:
            container = self._container("GET", f"/library/metadata/{_quote(str(item_id))}", {"includeGuids": 1})
        except NotFoundError:
            return None
        items = container.get("Metadata") or []
        return self._indexed(items[0]) if items and isinstance(items[0], dict) else None

    def identity(self) -> str:
        # /identity answers without a token (the cheapest way to ask who this is).
        return str(self._container("GET", "/identity", auth=False).get("machineIdentifier") or "")

    def iter_items(self, page_size: Optional[int] = None, *,
                   since: Optional[float] = None) -> Iterator[IndexedItem]:
        size = max(1, int(page_size or self.page_size))
        sections = self._container("GET", "/library/sections/all").get("Directory") or []
        for section in sections:
            leaf_type = _LEAF_TYPE.get(str(section.get("type")))
            section_id = str(section.get("key") or "")
            if leaf_type is None or not section_id:
                continue  # music and photo libraries hold nothing a video player syncs
            params: Dict[str, Any] = {"type": leaf_type, "includeGuids": 1}
            if since is not None:
                # Plex's filter syntax (as python-plexapi's library search writes it): "field>>=value" is
                # field > value, and a field of another type than the section's own carries its type
                # ("episode.updatedAt" in a show library). One second less keeps the bound inclusive.
                field = "updatedAt" if section.get("type") == "movie" else "episode.updatedAt"
                params[field + ">>"] = int(since) - 1
            start = 0
            while True:
                container = self._container(
                    "GET", f"/library/sections/{_quote(section_id)}/all",
                    {**params, "X-Plex-Container-Start": start, "X-Plex-Container-Size": size})
                page = [m for m in container.get("Metadata") or [] if isinstance(m, dict)]
                for item in page:
                    yield self._indexed(item)
                start += len(page)
                total = _int(container.get("totalSize"))
                if not page or (total is not None and start >= total) or (total is None and len(page) < size):
                    break

    def item_for_part(self, part_id: Any) -> Optional[str]:
        """The ratingKey owning media part ``part_id`` (from ``/library/parts/{id}/…`` stream URLs).

        Plex has no lookup by part, so this answers from the parts seen so far and,
        failing that, walks the libraries once.
        """
        pid = _int(part_id)
        if pid is None:
            return None
        # A part that is not on this server must not cost a full listing on every
        # call: after a fruitless full walk, misses wait PART_WALK_INTERVAL.
        if pid not in self._part_items and self._clock() - self._walked_at >= PART_WALK_INTERVAL:
            for _ in self.iter_items():
                if pid in self._part_items:
                    break
            else:
                self._walked_at = self._clock()
        return self._part_items.get(pid)

    def close(self) -> None:
        self.http.close()

    # --- helpers ---------------------------------------------------------
    def _indexed(self, item: Dict[str, Any]) -> IndexedItem:
        rating_key = str(item.get("ratingKey") or "")
        paths, parts = [], []
        for media in item.get("Media") or []:  # each version
            for part in (media or {}).get("Part") or []:  # each file of it (cd1, cd2)
                pid = _int((part or {}).get("id"))
                if pid is not None and rating_key:
                    self._part_items[pid] = rating_key
                    parts.append(str(pid))
                if part.get("file"):
                    paths.append(str(part["file"]))
        title = str(item.get("title") or "")
        if item.get("grandparentTitle"):
            title = f"{item['grandparentTitle']} - {title}"
        updated = _int(item.get("updatedAt")) or _int(item.get("addedAt"))
        unique_paths = tuple(dict.fromkeys(paths))
        return IndexedItem(
            item_id=rating_key,
            name=title,
            path=unique_paths[0] if unique_paths else "",
            paths=unique_paths,
            part_ids=tuple(parts),
            provider_ids=provider_ids(item.get("Guid")),
            duration_ms=_int(item.get("duration")),
            kind=_KINDS.get(str(item.get("type") or ""), "other"),
            updated_at=float(updated) if updated else None,
        )


def _state(item: Dict[str, Any]) -> ItemState:
    view_count = _int(item.get("viewCount"), 0) or 0
    last = _int(item.get("lastViewedAt"))
    return ItemState(position_ms=_int(item.get("viewOffset"), 0) or 0, played=view_count > 0,
                     play_count=view_count, last_played_at=float(last) if last else None)


def _quote(segment: str) -> str:
    return quote(str(segment), safe="")


# --- plex.tv PIN sign-in ---------------------------------------------------
# The viewer asks for a PIN here, types its code at https://plex.tv/link, and
# the token arrives on the next poll; no password ever passes through the plugin.

def request_pin(client_id: str, *, base_url: str = PLEX_TV, timeout: float = 15.0) -> Tuple[int, str]:
    """Ask plex.tv for a PIN. Returns ``(pin_id, code)``; the viewer enters ``code`` at LINK_URL.

    Poll with the same ``client_id``: plex.tv ties the PIN to it.
    """
    body = _plex_tv("POST", "/api/v2/pins", client_id, base_url, timeout)
    pin_id, code = _int(body.get("id")), body.get("code")
    if pin_id is None or not code:
        raise TransientError("plex.tv answered the PIN request without an id and code")
    return pin_id, str(code)


def poll_pin(pin_id: int, client_id: str, *, base_url: str = PLEX_TV,
             timeout: float = 15.0) -> Optional[str]:
    """The token once the viewer has linked the PIN, else None.

    An expired or unknown PIN raises NotFoundError (ask for a new one).
    """
    body = _plex_tv("GET", f"/api/v2/pins/{int(pin_id)}", client_id, base_url, timeout)
    token = body.get("authToken")
    if token:
        http.register_secret(str(token))
        return str(token)
    return None


def _plex_tv(method: str, path: str, client_id: str, base_url: str, timeout: float) -> Dict[str, Any]:
    account = ServerConfig(id="plex.tv", type="plex", url=base_url,
                           connect_timeout=timeout, read_timeout=timeout)
    client = http.HttpClient(account, headers=plex_headers(client_id))
    try:
        body = client.request(method, path)
    finally:
        client.close()
    if not isinstance(body, dict):
        raise TransientError(f"plex.tv answered {method} {path} with something other than a JSON object")
    return body
