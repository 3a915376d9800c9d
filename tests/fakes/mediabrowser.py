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
import hashlib
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional

from werkzeug.wrappers import Request, Response

from .base import FakeServer, json_response

TICKS_PER_SECOND = 10_000_000
FOLDER_TYPES = ("Series", "Season", "Folder", "BoxSet", "CollectionFolder")


@dataclass
class FakeUser:
    id: str
    name: str
    password: str
    is_admin: bool = False


@dataclass(frozen=True)
class PlayRules:
    """What a server DOES with playback reports and played marks.

    Each server fake sets these from its own source or documentation and cites
    where each value comes from (see tests/fakes/jellyfin.py). The defaults are
    the MediaBrowser lineage's behaviour, which Jellyfin 10.8 still has.
    """

    min_resume_pct: float = 5.0            # ServerConfiguration.MinResumePct
    max_resume_pct: float = 90.0           # ServerConfiguration.MaxResumePct
    min_resume_duration_s: float = 300.0   # ServerConfiguration.MinResumeDurationSeconds
    start_resets_played: bool = True       # OnPlaybackStart sets Played=false
    end_slack_ticks: int = 0               # a position >= runtime - slack counts as the end
    mark_played_keeps_date: bool = False   # MarkPlayed without a date keeps LastPlayedDate
    idle_stop_s: float = 300.0             # a playing session with no check-in for this long is stopped
    user_data_route: bool = False          # POST .../UserData sets fields directly
    user_data_writes_token_user: bool = False  # an admin's UserData write ignores userId (jellyfin#15733)


@dataclass
class FakeItem:
    id: str
    name: str
    path: str = ""
    provider_ids: Dict[str, str] = field(default_factory=dict)
    runtime_ticks: Optional[int] = None
    type: str = "Movie"
    extra_paths: List[str] = field(default_factory=list)  # other versions (MediaSources)
    saved_at: float = 0.0  # DateLastSaved: when the server last wrote the item (epoch s)
    # A stacked file's further parts (cd2, cd3…): Video.AdditionalParts holds their paths, and
    # Video.Path is the first part (MediaBrowser.Controller/Entities/Video.cs:45,160 at v10.10.7)
    parts: List[str] = field(default_factory=list)


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
    rules = PlayRules()  # a subclass sets its server's (with citations)

    def __init__(self, server_name: str = "Fake Server", server_id: Optional[str] = None, **kw):
        super().__init__(**kw)
        self.server_name = server_name
        self.server_id = server_id or uuid.uuid4().hex
        self.users: Dict[str, FakeUser] = {}
        self.items: Dict[str, FakeItem] = {}
        self.tokens: Dict[str, str] = {}  # token -> user id
        self.data: Dict[tuple, UserData] = {}
        self.sessions: List[dict] = []  # playback session reports, for assertions
        # What the dashboard shows as "now playing": session key -> {item, user, position, paused, check_in, ...}
        self.now_playing: Dict[str, dict] = {}
        self.now = time.time  # replaceable clock for dates the server stamps

    # -- seeding ---------------------------------------------------------
    def new_item_id(self) -> str:
        return uuid.uuid4().hex

    def add_user(self, name: str = "alice", password: str = "pass", user_id: Optional[str] = None,
                 is_admin: bool = False) -> str:
        uid = user_id or uuid.uuid4().hex
        with self.lock:
            self.users[uid] = FakeUser(uid, name, password, is_admin)
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
                 runtime_s: Optional[float] = 3600.0, type: str = "Movie", item_id: Optional[str] = None,
                 extra_paths: Optional[List[str]] = None, parts: Optional[List[str]] = None) -> str:
        iid = item_id or self.new_item_id()
        ticks = None if runtime_s is None else int(runtime_s * TICKS_PER_SECOND)
        with self.lock:
            self.items[iid] = FakeItem(iid, name, path, dict(provider_ids or {}), ticks, type,
                                       list(extra_paths or ()), self.now(), list(parts or ()))
        return iid

    def update_item(self, item_id: str, **changes) -> None:
        """Change an item as a library scan would; the server stamps DateLastSaved."""
        with self.lock:
            self.items[item_id] = replace(self.items[item_id], **changes, saved_at=self.now())

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

    # -- behaviour shared by the servers (the rules: see PlayRules) ----------------
    def mark_played(self, uid: str, iid: str, when: Optional[float] = None) -> UserData:
        """MarkPlayed: a date counts one more play; without one the count only becomes at least 1."""
        with self.lock:
            d = self.user_data(uid, iid)
            count = d.play_count + 1 if when is not None else max(d.play_count, 1)
            last = when if when is not None else (d.last_played if self.rules.mark_played_keeps_date else None)
            return self.set_user_data(uid, iid, played=True, play_count=count, position_ticks=0,
                                      last_played=self.now() if last is None else last)

    def mark_unplayed(self, uid: str, iid: str) -> UserData:
        return self.set_user_data(uid, iid, played=False, play_count=0, position_ticks=0, last_played=None)

    def playback_started(self, uid: str, iid: str) -> UserData:
        """OnPlaybackStart(user, item): one more play, now as the last-played date; Played reset (up to 10.11)."""
        with self.lock:
            d = self.user_data(uid, iid)
            played = False if self.rules.start_resets_played else d.played
            return self.set_user_data(uid, iid, play_count=d.play_count + 1, last_played=self.now(), played=played)

    def update_play_state(self, uid: str, iid: str, position_ticks: Optional[int]) -> bool:
        """UserDataManager.UpdatePlayState for a video: returns played-to-completion.

        Below MinResumePct the position is dropped; past MaxResumePct (or at the
        end) the item becomes played at 0; in between, an item shorter than
        MinResumeDurationSeconds becomes played too. It never clears Played and
        never changes the play count. No known runtime: played.
        """
        r = self.rules
        with self.lock:
            item = self.items[iid]
            d = self.user_data(uid, iid)
            runtime = item.runtime_ticks or 0
            pos = runtime if position_ticks is None else int(position_ticks)
            played = d.played
            done = False
            if pos > 0 and runtime > 0:
                pct = 100.0 * pos / runtime
                if pct < r.min_resume_pct:
                    pos = 0
                elif pct > r.max_resume_pct or pos >= runtime - r.end_slack_ticks:
                    pos, played, done = 0, True, True
                elif runtime / TICKS_PER_SECOND < r.min_resume_duration_s:
                    pos, played, done = 0, True, True
            elif runtime <= 0:
                pos, played, done = 0, True, True
            self.set_user_data(uid, iid, position_ticks=pos, played=played)
            return done

    def playback_progress(self, uid: str, iid: str, position_ticks: Optional[int]) -> None:
        """OnPlaybackProgress(user, item, info): the resume rules on the reported position, nothing else."""
        if position_ticks is not None:
            self.update_play_state(uid, iid, position_ticks)

    def playback_stopped(self, uid: str, iid: str, position_ticks: Optional[int], failed: bool = False) -> None:
        """OnPlaybackStopped(user, item, ...): the resume rules; no position means 'played to the end'."""
        if failed:
            return
        with self.lock:
            if position_ticks is not None:
                self.update_play_state(uid, iid, position_ticks)
            else:
                d = self.user_data(uid, iid)
                self.set_user_data(uid, iid, play_count=d.play_count + 1, played=True, position_ticks=0)

    def expire_idle_sessions(self) -> List[str]:
        """The idle check: a session playing with no check-in for ``rules.idle_stop_s`` is stopped
        at its last known position. Returns the stopped session keys (call it after moving ``now``)."""
        stopped = []
        with self.lock:
            for key, s in list(self.now_playing.items()):
                if self.now() - s["check_in"] > self.rules.idle_stop_s:
                    del self.now_playing[key]
                    self.playback_stopped(s["user"], s["item"], s["position"])
                    stopped.append(key)
        return stopped

    def user_data_json(self, uid: str, iid: str) -> dict:
        d = self.user_data(uid, iid)
        out = {"PlaybackPositionTicks": d.position_ticks, "PlayCount": d.play_count, "IsFavorite": False,
               "Played": d.played, "Key": iid, "ItemId": iid}
        if d.last_played is not None:
            out["LastPlayedDate"] = iso(d.last_played)
        return out

    def item_json(self, uid: str, item: FakeItem, fields: Optional[set] = None) -> dict:
        """An item as the servers list it; Path and ProviderIds only when asked (or for a single item)."""
        folder = item.type in FOLDER_TYPES
        out = {"Name": item.name, "ServerId": self.server_id, "Id": item.id, "Type": item.type,
               "IsFolder": folder, "MediaType": "Unknown" if folder else "Video",
               "UserData": self.user_data_json(uid, item.id)}
        if item.runtime_ticks is not None:
            out["RunTimeTicks"] = item.runtime_ticks
        if fields is None or "Path" in fields:
            out["Path"] = item.path
        if fields is None or "ProviderIds" in fields:
            out["ProviderIds"] = dict(item.provider_ids)
        if (fields is None or "MediaSources" in fields) and not folder and item.path:
            # One source per version, each with its file (DtoService.cs:211-214 at v10.8.13).
            out["MediaSources"] = [{"Id": item.id if n == 0 else "%s%02d" % (item.id[:30], n), "Path": p,
                                    "Protocol": "File", "Type": "Default", "Name": item.name}
                                   for n, p in enumerate([item.path] + item.extra_paths)]
        if item.parts and not folder:
            # PartCount only on a stacked video: its additional parts + 1
            # (Emby.Server.Implementations/Dto/DtoService.cs:1047-1050 at v10.10.7). The parts'
            # paths are not in the item's answer (nor among its MediaSources): only
            # /Videos/{id}/AdditionalParts names them.
            out["PartCount"] = len(item.parts) + 1
        return out

    def part_id(self, owner: FakeItem, n: int) -> str:
        """An additional part's own id (the server derives it from the part's path and type:
        Video.cs:341-344 at v10.10.7); such owned parts are not listed among the library's items."""
        return self.item_key(hashlib.md5(("%s|%d|%s" % (owner.id, n, owner.parts[n])).encode()).hexdigest())

    def additional_parts(self, req: Request, asked: Optional[str], item_id):
        """GET /Videos/{id}/AdditionalParts: each further part as an item, with its Path (a
        DtoOptions() of every field), ordered by name; none for an item that is not stacked
        (Jellyfin.Api/Controllers/VideosController.cs:93-130, Video.cs:377-384 at v10.10.7)."""
        uid, item, err = self.user_item(req, asked, item_id)
        if err is not None:
            return err
        parts = [{"Name": "%s (part %d)" % (item.name, n + 2), "ServerId": self.server_id,
                  "Id": self.part_id(item, n), "Type": "Video", "IsFolder": False, "MediaType": "Video",
                  "Path": path, "UserData": self.user_data_json(uid, self.part_id(item, n))}
                 for n, path in enumerate(item.parts)]
        parts.sort(key=lambda d: d["Name"].lower())
        return {"Items": parts, "TotalRecordCount": len(parts), "StartIndex": 0}

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

    # -- hooks where the servers differ -------------------------------------
    sign_in_header = "Authorization"  # where a sign-in names the client
    sign_in_incomplete = "Authorization header must name Client, Device, DeviceId and Version"
    pascal_query = False  # Emby spells query parameters PascalCase, Jellyfin camelCase

    def token_of(self, req: Request) -> Optional[str]:
        raise NotImplementedError

    def item_key(self, iid) -> str:
        """An item id as the server stores it."""
        return str(iid or "")

    def qname(self, name: str) -> str:
        return name[:1].upper() + name[1:] if self.pascal_query else name

    def list_arg(self, args, name: str) -> List[str]:
        """A list-valued query parameter: repeated keys, each may hold A,B."""
        return [x for v in args.getlist(name) for x in v.split(",") if x]

    def filter_items(self, args, items: List[FakeItem]) -> List[FakeItem]:
        """Filters beyond ids and types that a server offers."""
        return items

    def saved_since(self, args, items: List[FakeItem]) -> List[FakeItem]:
        """The MinDateLastSaved filter, as Emby's last published source has it.

        Emby 4.8 is closed source and its spec describes both parameters only as "The minimum
        premiere date" (emby-openapi_v3-4.8.11.json, GET /Users/{UserId}/Items), so the rule
        cannot be confirmed for 4.8. The code Jellyfin forked from Emby 3.5 (jellyfin v10.0.0,
        Emby.Server.Implementations/Data/SqliteItemRepository.cs:3847-3863) adds, for
        MinDateLastSaved, "DateLastSaved>=@MinDateLastSavedForUser" but binds @MinDateLastSaved:
        alone it compares with NULL and matches nothing; MinDateLastSavedForUser binds the name
        both clauses read (the item's DateLastSaved, not the user's data). Modelled as that code.
        """
        since = args.get(self.qname("minDateLastSaved"))
        for_user = args.get(self.qname("minDateLastSavedForUser"))
        if since and not for_user:
            return []
        since = for_user or since
        return items if not since else [i for i in items if i.saved_at >= parse_iso(since)]

    def played_date(self, req: Request, played: bool):
        """(epoch seconds or None, error response) from a mark-played request."""
        return None, None

    def bad_credentials(self) -> Response:
        return self.unauthorized()

    # -- handlers the servers share ----------------------------------------
    def user_of(self, req: Request) -> Optional[str]:
        tok = self.token_of(req)
        with self.lock:
            return self.tokens.get(tok) if tok else None

    def _uid_for(self, req: Request, asked: Optional[str]):
        """(user id, error response): the token's user, who may only touch their own data."""
        uid = self.user_of(req)
        if uid is None:
            return None, self.unauthorized()
        if asked and norm_id(asked) != uid:
            # An administrator may act for another user; anyone else is refused.
            with self.lock:
                admin = self.users[uid].is_admin
                other = next((u for u in self.users if norm_id(u) == norm_id(asked)), None)
            if not admin:
                return None, json_response({"message": "Forbidden"}, 403)
            if other is None:
                return None, self.not_found("User not found.")
            return other, None
        return uid, None

    def _item(self, iid) -> Optional[FakeItem]:
        with self.lock:
            return self.items.get(self.item_key(iid))

    def user_item(self, req: Request, asked: Optional[str], item_id):
        """(user id, item, error response) for a request about one item of the token's user."""
        uid, err = self._uid_for(req, asked)
        if err is not None:
            return None, None, err
        item = self._item(item_id)
        if item is None:
            return None, None, self.not_found()
        return uid, item, None

    def authenticate(self, req: Request):
        fields = parse_auth_fields(req.headers.get(self.sign_in_header, ""))
        if not all(fields.get(k) for k in ("Client", "Device", "DeviceId", "Version")):
            # The server needs the client's identity to open a session.
            return self.bad_request(self.sign_in_incomplete)
        body = body_json(req)
        with self.lock:
            user = next((u for u in self.users.values() if u.name.lower() == str(body.get("Username", "")).lower()),
                        None)
        if user is None or user.password != body.get("Pw"):
            return self.bad_credentials()
        token = self.issue_token(user.id)
        return {"User": {"Name": user.name, "ServerId": self.server_id, "Id": user.id, "HasPassword": True},
                "SessionInfo": {"UserId": user.id, "Client": fields["Client"], "DeviceId": fields["DeviceId"]},
                "AccessToken": token, "ServerId": self.server_id}

    def session_key(self, req: Request, uid: str) -> str:
        """Which dashboard session a report belongs to: the client's device (one per device and user)."""
        fields = parse_auth_fields(req.headers.get(self.sign_in_header, "") or req.headers.get("Authorization", ""))
        return f"{uid}:{fields.get('DeviceId') or self.token_of(req)}"

    def _session(self, req: Request, kind: str, stopped: bool = False):
        """A playback report (start, progress or stopped), applied as the server does and kept for assertions."""
        body = body_json(req)
        uid, item, err = self.user_item(req, None, body.get("ItemId"))
        if err is not None:
            return err
        pos = body.get("PositionTicks")
        pos = None if pos is None else int(pos)
        key = self.session_key(req, uid)
        with self.lock:
            self.sessions.append({"kind": kind, "user": uid, "session": key, **body})
            if kind == "stopped":
                self.now_playing.pop(key, None)
                self.playback_stopped(uid, item.id, pos, bool(body.get("Failed")))
                return None
            prev = self.now_playing.get(key, {})
            self.now_playing[key] = {"item": item.id, "user": uid, "check_in": self.now(),
                                     "position": pos if pos is not None else prev.get("position"),
                                     "paused": bool(body.get("IsPaused")),
                                     "play_session_id": body.get("PlaySessionId")}
            if kind == "start":
                self.playback_started(uid, item.id)
            else:
                self.playback_progress(uid, item.id, pos)
        return None

    def _played(self, req: Request, asked: Optional[str], item_id, played: bool):
        uid, item, err = self.user_item(req, asked, item_id)
        if err is not None:
            return err
        when, err = self.played_date(req, played)
        if err is not None:
            return err
        if played:
            self.mark_played(uid, item.id, when)
        else:
            self.mark_unplayed(uid, item.id)
        return self.user_data_json(uid, item.id)

    def _update_user_data(self, req: Request, asked: Optional[str], item_id):
        """(user id, item, error response) after applying a UserData body: it sets exactly the
        fields it names (no resume rules, no play count of its own)."""
        uid, item, err = self.user_item(req, asked, item_id)
        if err is not None:
            return None, None, err
        if self.rules.user_data_writes_token_user:
            uid = self.user_of(req)  # the admin's own data, whatever userId said (jellyfin#15733)
        body = body_json(req)
        changes = {}
        if body.get("PlaybackPositionTicks") is not None:
            changes["position_ticks"] = int(body["PlaybackPositionTicks"])
        if body.get("Played") is not None:
            changes["played"] = bool(body["Played"])
        if body.get("PlayCount") is not None:
            changes["play_count"] = int(body["PlayCount"])
        if body.get("LastPlayedDate") is not None:
            changes["last_played"] = parse_iso(body["LastPlayedDate"])
        self.set_user_data(uid, item.id, **changes)
        return uid, item, None

    def _one_item(self, req: Request, asked: Optional[str], item_id):
        uid, item, err = self.user_item(req, asked, item_id)
        return err if err is not None else self.item_json(uid, item)

    def _list(self, req: Request, asked: Optional[str]):
        uid, err = self._uid_for(req, asked)
        if err is not None:
            return err
        a, n = req.args, self.qname
        items = self.sorted_items()
        ids = [self.item_key(x) for x in self.list_arg(a, n("ids"))]
        if ids:
            items = [i for i in items if i.id in ids]
        elif a.get(n("recursive"), "false").lower() != "true":
            # Without recursive the server lists the user's libraries, not their contents.
            items = []
        types = self.list_arg(a, n("includeItemTypes"))
        if types:
            items = [i for i in items if i.type in types]
        items = self.saved_since(a, self.filter_items(a, items))
        start = int(a.get(n("startIndex")) or 0)
        limit = int(a[n("limit")]) if a.get(n("limit")) else None
        return self.page(uid, items, start, limit, set(self.list_arg(a, n("fields"))))


def norm_id(s: Optional[str]) -> str:
    """A user or item id without dashes, lower case (clients may send either form)."""
    return (s or "").replace("-", "").lower()


def body_json(req: Request) -> dict:
    data = req.get_json(silent=True)
    return data if isinstance(data, dict) else {}


__all__ = ["MediaBrowserFake", "UserData", "FakeItem", "FakeUser", "TICKS_PER_SECOND", "iso", "parse_iso",
           "parse_auth_fields", "body_json", "json_response", "norm_id"]
