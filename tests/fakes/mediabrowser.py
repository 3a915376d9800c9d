"""State shared by the Jellyfin and Emby fakes (both descend from MediaBrowser).

Per-user item data is real state the tests seed and read back:

    uid = fake.add_user("alice", "secret")            # -> user id
    token = fake.issue_token(uid)                       # or sign in over HTTP
    iid = fake.add_item("The Matrix", path="/media/The Matrix (1999).mkv",
                        provider_ids={"Imdb": "tt0133093", "Tmdb": "603"},
                        runtime_s=8160, type="Movie")
    fake.set_user_data(uid, iid, position_ticks=..., played=True, play_count=2,
                       last_played=1700000000.0)        # epoch seconds
    fake.user_data(uid, iid)  # -> UserData(position_ticks, played, play_count, last_played)
    fake.remove_item(iid); fake.revoke_token(token)
"""
from __future__ import annotations

import datetime as dt
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional

from werkzeug.wrappers import Request, Response

from .base import FakeServer, json_response

TICKS_PER_SECOND = 10_000_000


@dataclass
class FakeUser:
    id: str
    name: str
    password: str


@dataclass
class FakeItem:
    id: str
    name: str
    path: str = ""
    provider_ids: Dict[str, str] = field(default_factory=dict)
    runtime_ticks: Optional[int] = None
    type: str = "Movie"


@dataclass(frozen=True)
class UserData:
    position_ticks: int = 0
    played: bool = False
    play_count: int = 0
    last_played: Optional[float] = None  # epoch seconds


def iso(epoch: Optional[float]) -> Optional[str]:
    """The servers' date format: seven fraction digits and Z."""
    if epoch is None:
        return None
    d = dt.datetime.fromtimestamp(epoch, dt.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond:06d}0Z"


def parse_iso(s: Optional[str]) -> Optional[float]:
    if not s:
        return None
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$", s)
    if not m:
        raise ValueError(f"bad date {s!r}")
    base = dt.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")
    frac = float("0." + m.group(2)) if m.group(2) else 0.0
    tz = m.group(3) or "Z"
    off = dt.timedelta(0)
    if tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        hh, mm = int(tz[1:3]), int(tz[-2:])
        off = sign * dt.timedelta(hours=hh, minutes=mm)
    return (base - off).replace(tzinfo=dt.timezone.utc).timestamp() + frac


def parse_auth_fields(value: str) -> Dict[str, str]:
    """``MediaBrowser Client="x", Token="y"`` -> {"Client": "x", "Token": "y"}."""
    _, _, rest = value.partition(" ")
    return {k: v for k, v in re.findall(r'(\w+)\s*=\s*"([^"]*)"', rest)}


class MediaBrowserFake(FakeServer):
    """Users, items, tokens and per-user data; subclasses add the routes."""

    product = "MediaBrowser"
    version = "0"
    # The servers' resume rules when a playback session stops.
    min_resume_pct = 5.0
    max_resume_pct = 90.0

    def __init__(self, server_name: str = "Fake Server", server_id: Optional[str] = None, **kw):
        super().__init__(**kw)
        self.server_name = server_name
        self.server_id = server_id or uuid.uuid4().hex
        self.users: Dict[str, FakeUser] = {}
        self.items: Dict[str, FakeItem] = {}
        self.tokens: Dict[str, str] = {}  # token -> user id
        self.data: Dict[tuple, UserData] = {}
        self.sessions: List[dict] = []  # playback session reports, for assertions
        self.now = time.time  # replaceable clock for dates the server stamps

    # -- seeding ---------------------------------------------------------
    def new_item_id(self) -> str:
        return uuid.uuid4().hex

    def add_user(self, name: str = "alice", password: str = "pass", user_id: Optional[str] = None) -> str:
        uid = user_id or uuid.uuid4().hex
        with self.lock:
            self.users[uid] = FakeUser(uid, name, password)
        return uid

    def issue_token(self, user_id: str, token: Optional[str] = None) -> str:
        token = token or secrets.token_hex(16)
        with self.lock:
            self.tokens[token] = user_id
        return token

    def revoke_token(self, token: str) -> None:
        with self.lock:
            self.tokens.pop(token, None)

    def add_item(self, name: str, path: str = "", provider_ids: Optional[Dict[str, str]] = None,
                 runtime_s: Optional[float] = 3600.0, type: str = "Movie", item_id: Optional[str] = None) -> str:
        iid = item_id or self.new_item_id()
        ticks = None if runtime_s is None else int(runtime_s * TICKS_PER_SECOND)
        with self.lock:
            self.items[iid] = FakeItem(iid, name, path, dict(provider_ids or {}), ticks, type)
        return iid

    def remove_item(self, item_id: str) -> None:
        with self.lock:
            self.items.pop(item_id, None)

    def user_data(self, user_id: str, item_id: str) -> UserData:
        with self.lock:
            return self.data.get((user_id, item_id), UserData())

    def set_user_data(self, user_id: str, item_id: str, **changes) -> UserData:
        with self.lock:
            d = replace(self.user_data(user_id, item_id), **changes)
            self.data[(user_id, item_id)] = d
            return d

    # -- behaviour shared by the servers -----------------------------------
    def mark_played(self, uid: str, iid: str, when: Optional[float] = None) -> UserData:
        d = self.user_data(uid, iid)
        return self.set_user_data(uid, iid, played=True, play_count=d.play_count + 1, position_ticks=0,
                                  last_played=self.now() if when is None else when)

    def mark_unplayed(self, uid: str, iid: str) -> UserData:
        return self.set_user_data(uid, iid, played=False, play_count=0, position_ticks=0, last_played=None)

    def playback_stopped(self, uid: str, iid: str, position_ticks: Optional[int]) -> UserData:
        """What a server does with a stopped session's position (its resume rules)."""
        item = self.items[iid]
        pos = int(position_ticks or 0)
        done = False
        if pos > 0 and item.runtime_ticks:
            pct = 100.0 * pos / item.runtime_ticks
            if pct < self.min_resume_pct:
                pos = 0
            elif pct > self.max_resume_pct:
                pos, done = 0, True
        d = self.user_data(uid, iid)
        if done:
            return self.set_user_data(uid, iid, played=True, play_count=d.play_count + 1, position_ticks=0,
                                      last_played=self.now())
        return self.set_user_data(uid, iid, position_ticks=pos, last_played=self.now())

    def user_data_json(self, uid: str, iid: str) -> dict:
        d = self.user_data(uid, iid)
        out = {"PlaybackPositionTicks": d.position_ticks, "PlayCount": d.play_count, "IsFavorite": False,
               "Played": d.played, "Key": iid, "ItemId": iid}
        if d.last_played is not None:
            out["LastPlayedDate"] = iso(d.last_played)
        return out

    def item_json(self, uid: str, item: FakeItem, fields: Optional[set] = None) -> dict:
        """An item as the servers list it; Path and ProviderIds only when asked (or for a single item)."""
        out = {"Name": item.name, "ServerId": self.server_id, "Id": item.id, "Type": item.type,
               "IsFolder": False, "MediaType": "Video", "UserData": self.user_data_json(uid, item.id)}
        if item.runtime_ticks is not None:
            out["RunTimeTicks"] = item.runtime_ticks
        if fields is None or "Path" in fields:
            out["Path"] = item.path
        if fields is None or "ProviderIds" in fields:
            out["ProviderIds"] = dict(item.provider_ids)
        return out

    def unauthorized(self) -> Response:
        return Response("", status=401)

    def not_found(self, what: str = "Item not found.") -> Response:
        return Response(what, status=404, content_type="text/plain")

    def bad_request(self, msg: str) -> Response:
        return Response(msg, status=400, content_type="text/plain")

    def page(self, uid: str, items: List[FakeItem], start: int, limit: Optional[int], fields: set) -> dict:
        chosen = items[start:] if limit is None else items[start:start + limit]
        return {"Items": [self.item_json(uid, i, fields) for i in chosen], "TotalRecordCount": len(items),
                "StartIndex": start}

    def sorted_items(self) -> List[FakeItem]:
        with self.lock:
            return sorted(self.items.values(), key=lambda i: (i.name.lower(), i.id))


def body_json(req: Request) -> dict:
    data = req.get_json(silent=True)
    return data if isinstance(data, dict) else {}


__all__ = ["MediaBrowserFake", "UserData", "FakeItem", "FakeUser", "TICKS_PER_SECOND", "iso", "parse_iso",
           "parse_auth_fields", "body_json", "json_response"]
