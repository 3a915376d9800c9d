"""What Jellyfin and Emby share (both descend from MediaBrowser): ticks, dates,
the client identity header, the item and user-data shapes, sign-in.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import re
import socket
from dataclasses import replace
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from .. import __version__
from ..config import ServerConfig
from .base import IndexedItem, ItemState, PermanentError, TransientError, WrongUserToken
from .http import HttpClient, register_secret

TICKS_PER_MS = 10_000  # 10,000,000 ticks per second
CLIENT_NAME = "Playback Sync"
PLAYABLE_TYPES = ("Movie", "Episode", "Video", "MusicVideo")
_KINDS = {"movie": "movie", "episode": "episode", "video": "video", "musicvideo": "video",
          "series": "series", "season": "season"}
# Listing fields: paths of every version (MediaSources), ids, and the save date incremental refreshes filter on.
LIST_FIELDS = ("ProviderIds", "Path", "MediaSources", "DateLastSaved")


def ms_to_ticks(ms: Optional[int]) -> int:
    return max(0, int(ms or 0)) * TICKS_PER_MS


def ticks_to_ms(ticks: Any) -> int:
    try:
        return max(0, int(ticks or 0)) // TICKS_PER_MS
    except (TypeError, ValueError):
        return 0


def iso_utc(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_DATE = re.compile(r"(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:\.(\d+))?\s*(Z|[+-]\d\d:?\d\d)?$")


def parse_date(value: Any) -> Optional[float]:
    """A server date (``2024-01-02T03:04:05.1234567Z``, 7 fraction digits) as epoch seconds."""
    if not isinstance(value, str) or not value:
        return None
    m = _DATE.match(value.strip())
    if not m:
        return None
    # Built from the numbers, not with strptime: Kodi's embedded Python fails strptime ("'NoneType'
    # object is not callable") in a service started again in a new interpreter (seen in real Kodi 20.1).
    (year, month, day), (hour, minute, second) = (map(int, m.group(1).split("-")), map(int, m.group(2).split(":")))
    base = dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.timezone.utc)
    frac = float("0." + m.group(3)) if m.group(3) else 0.0
    tz = m.group(4)
    off = 0
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        off = sign * (int(tz[1:3]) * 3600 + int(tz[-2:]) * 60)
    t = base.timestamp() + frac - off
    # The servers send 0001-01-01 for "never".
    return None if t <= 0 else t


def provider_ids(raw: Any) -> Dict[str, str]:
    """Provider ids with lower-case keys (imdb, tmdb, tvdb, …), empty values dropped."""
    if not isinstance(raw, dict):
        return {}
    return {str(k).lower(): str(v) for k, v in raw.items() if v not in (None, "")}


def item_kind(d: dict) -> str:
    kind = _KINDS.get(str(d.get("Type") or "").lower())
    if kind:
        return kind
    return "folder" if d.get("IsFolder") else "other"


def item_paths(d: dict) -> Tuple[str, ...]:
    """The item's own path, then each media source's (versions, stacked parts), once each."""
    found = [str(d.get("Path") or "")]
    for source in d.get("MediaSources") or ():
        if isinstance(source, dict) and source.get("Path") and source.get("Protocol", "File") == "File":
            found.append(str(source["Path"]))
    return tuple(dict.fromkeys(p for p in found if p))


def indexed_item(d: dict) -> IndexedItem:
    rt = d.get("RunTimeTicks")
    paths = item_paths(d)
    return IndexedItem(item_id=str(d.get("Id", "")), name=str(d.get("Name") or ""),
                       path=paths[0] if paths else "", paths=paths,
                       provider_ids=provider_ids(d.get("ProviderIds")),
                       duration_ms=ticks_to_ms(rt) if rt else None, kind=item_kind(d),
                       updated_at=parse_date(d.get("DateLastSaved")))


def since_param(since: Optional[float]) -> Dict[str, str]:
    """Jellyfin's "saved since" filter (ISO, UTC) or nothing.

    Both names, same value: Jellyfin 10.8-10.10 bind ``minDateLastSaved`` to a parameter
    its SQL does not use and compare with ``@MinDateLastSavedForUser`` instead
    (Emby.Server.Implementations/Data/SqliteItemRepository.cs:3557-3560 at v10.8.13), so
    alone it matches nothing; with both, both clauses read the same date.
    """
    if since is None:
        return {}
    return {"minDateLastSaved": iso_utc(since), "minDateLastSavedForUser": iso_utc(since)}


def item_state(user_data: Any) -> ItemState:
    u = user_data if isinstance(user_data, dict) else {}
    try:
        count = int(u.get("PlayCount") or 0)
    except (TypeError, ValueError):
        count = 0
    return ItemState(position_ms=ticks_to_ms(u.get("PlaybackPositionTicks")), played=bool(u.get("Played")),
                     play_count=count, last_played_at=parse_date(u.get("LastPlayedDate")))


def with_parts(raw: dict, parts_of: Optional[Callable[[str], List[str]]]) -> IndexedItem:
    """An item of a listing, with the files of a stacked video's further parts (cd2, cd3…).

    Jellyfin and Emby list only the first part (``Path``); a ``PartCount`` above 1 says there
    are more (DtoService.cs:1047-1050 at v10.10.7), whose paths ``parts_of(item id)`` asks
    for (``/Videos/{id}/AdditionalParts``). Playing any part identifies the item the library
    shows (the parts are owned by it, not listed on their own).
    """
    item = indexed_item(raw)
    try:
        count = int(raw.get("PartCount") or 0)
    except (TypeError, ValueError):
        count = 0
    if count < 2 or parts_of is None or not item.item_id:
        return item
    extra = tuple(p for p in parts_of(item.item_id) if p and p not in item.paths)
    return replace(item, paths=item.paths + extra, path=item.path or (extra[0] if extra else ""))


def part_paths(answer: Any) -> List[str]:
    """The paths in a /Videos/{id}/AdditionalParts answer."""
    items = answer.get("Items") if isinstance(answer, dict) else None
    return [str(d["Path"]) for d in items or () if isinstance(d, dict) and d.get("Path")]


def paged_items(fetch_page: Callable[[int], dict], page_size: int,
                parts_of: Optional[Callable[[str], List[str]]] = None) -> Iterator[IndexedItem]:
    """Each item of a paged listing once; ``fetch_page(start)`` returns one page's answer;
    ``parts_of``: see ``with_parts``."""
    start, seen = 0, set()
    while True:
        d = fetch_page(start)
        items = d.get("Items") or []
        new = 0
        for raw in items:
            if isinstance(raw, dict) and raw.get("Id") and raw["Id"] not in seen:
                seen.add(raw["Id"])
                new += 1
                yield with_parts(raw, parts_of)
        start += len(items)
        total = d.get("TotalRecordCount")
        # A page with nothing new means the server ignores paging: stop, don't loop.
        if not items or not new:
            return
        if (start >= total) if isinstance(total, int) else len(items) < page_size:
            return


def device_id_for(server: ServerConfig) -> str:
    """The configured device id, or a stable one derived from this machine and server."""
    if server.device_id:
        return server.device_id
    return hashlib.sha256(f"playbacksync|{socket.gethostname()}|{server.id}".encode()).hexdigest()[:32]


def _q(s: str) -> str:
    return str(s).replace('"', "'").replace("\r", " ").replace("\n", " ")


def client_fields(device_id: str, token: str = "") -> str:
    """``Client="…", Device="…", DeviceId="…", Version="…"[, Token="…"]``."""
    parts = [f'Client="{CLIENT_NAME}"', f'Device="{_q(socket.gethostname() or "device")}"',
             f'DeviceId="{_q(device_id)}"', f'Version="{__version__}"']
    if token:
        parts.append(f'Token="{_q(token)}"')
    return ", ".join(parts)


def need_json_dict(data: Any, what: str) -> dict:
    if not isinstance(data, dict):
        # A 200 with the wrong shape: a proxy or an unexpected server in the way.
        raise TransientError(f"{what}: unexpected answer from the server")
    return data


def sign_in_request(server: ServerConfig, path: str, headers: Dict[str, str], username: str,
                    password: str) -> Tuple[str, str]:
    client = HttpClient(server, headers=headers, secrets=[password])  # registers the password for redaction
    try:
        data = need_json_dict(client.request("POST", path, json={"Username": username, "Pw": password}),
                              f"POST {path}")
    finally:
        client.close()
    token = data.get("AccessToken")
    user_id = (data.get("User") or {}).get("Id") if isinstance(data.get("User"), dict) else None
    if not token or not user_id:
        raise PermanentError(f"POST {path}: the server's answer has no token or user id")
    register_secret(token)
    return str(token), str(user_id)


def same_user(token_user_id: str, configured_user_id: str) -> bool:
    return token_user_id.replace("-", "").lower() == configured_user_id.replace("-", "").lower()


def refuse_other_users_token(server: ServerConfig, token_user_id: str, token_user_name: str = "") -> None:
    """Each user's changes travel with that user's own token, nobody else's: an administrator's token
    with another user's id would apply changes to the administrator (jellyfin#15733) or to whoever the
    server picks. Raises AuthError (the worker pauses the server; ``status`` shows the message)."""
    if not server.user_id or same_user(token_user_id, server.user_id):
        return
    who = f"{token_user_name!r} ({token_user_id})" if token_user_name else token_user_id
    configured = f"{server.username!r} ({server.user_id})" if server.username else server.user_id
    raise WrongUserToken(f"the token for server {server.id!r} belongs to user {who}, not to the configured user "
                    f"{configured}: changes are only sent with the user's own token — sign in as that user "
                    f"(playback-sync login {server.type} --server-id {server.id})")


def listing_states(answer: dict) -> Dict[str, ItemState]:
    """Each listed item's user data (an /Items answer asked with enableUserData) by item id."""
    return {str(raw["Id"]): item_state(raw.get("UserData")) for raw in answer.get("Items") or []
            if isinstance(raw, dict) and raw.get("Id")}


SESSION_ROUTES = {"start": "/Sessions/Playing", "progress": "/Sessions/Playing/Progress",
                  "stopped": "/Sessions/Playing/Stopped"}


def session_report(http: HttpClient, state: str, item_id: str, position_ms: int, paused: bool,
                   play_session_id: str) -> None:
    """POST a PlaybackStartInfo / PlaybackProgressInfo / PlaybackStopInfo as Jellyfin's and Emby's own
    clients do (the same bodies on both servers)."""
    body: Dict[str, Any] = {"ItemId": item_id, "PositionTicks": ms_to_ticks(position_ms),
                            "PlaySessionId": play_session_id}
    if state != "stopped":
        body.update(CanSeek=True, IsPaused=bool(paused), PlayMethod="DirectPlay")
    http.request("POST", SESSION_ROUTES[state], json=body, expect_json=False)


def version_tuple(version: str) -> Tuple[int, ...]:
    nums = re.findall(r"\d+", version or "")
    return tuple(int(n) for n in nums[:3]) if nums else ()
