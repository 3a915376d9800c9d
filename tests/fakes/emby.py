"""A fake Emby Server 4.8.11, routes under /emby.

    fake = EmbyFake(); fake.start()
    uid = fake.add_user("alice", "pass"); token = fake.issue_token(uid)
    iid = fake.add_item("The Matrix", path="/m/matrix.mkv", provider_ids={"Imdb": "tt0133093"})

Seeding and reading state: tests/fakes/mediabrowser.py; misbehaviour and the
request log: tests/fakes/base.py. Run alone: ``python -m tests.fakes.emby --port 8096``.
"""
from __future__ import annotations

import datetime as dt
import itertools
from typing import Optional

from .base import serve_forever_cli
from .mediabrowser import MediaBrowserFake, body_json, json_response, parse_auth_fields, parse_iso

SPEC = "/work/shared/specs/emby/emby-openapi_v3-4.8.11.json"
P = "/emby"


class EmbyFake(MediaBrowserFake):
    spec_path = SPEC
    server_url = P  # the spec names http://emby.media/emby; here it's this host, same prefix
    product = "Emby Server"
    version = "4.8.11.0"

    def __init__(self, server_name: str = "Fake Emby", **kw):
        super().__init__(server_name=server_name, **kw)
        self._ids = itertools.count(1000)
        r = lambda m, path, h: self.route(m, P + path, h)  # noqa: E731
        r("GET", "/System/Info/Public", self.system_info_public)
        r("GET", "/System/Info", self.system_info)
        r("POST", "/Users/AuthenticateByName", self.authenticate)
        r("POST", "/Users/{UserId}/PlayedItems/{Id}", lambda q, UserId, Id: self._played(q, UserId, Id, True))
        r("DELETE", "/Users/{UserId}/PlayedItems/{Id}", lambda q, UserId, Id: self._played(q, UserId, Id, False))
        r("POST", "/Users/{UserId}/PlayedItems/{Id}/Delete",
          lambda q, UserId, Id: self._played(q, UserId, Id, False))
        r("POST", "/Users/{UserId}/Items/{ItemId}/UserData", self.post_user_data)
        r("GET", "/Users/{UserId}/Items/{Id}", self.get_item)
        r("GET", "/Users/{UserId}/Items", lambda q, UserId: self._list(q, UserId))
        r("GET", "/Items", lambda q: self._list(q, q.args.get("UserId")))
        for kind in ("", "/Progress", "/Stopped"):
            r("POST", "/Sessions/Playing" + kind, lambda q, kind=kind: self._session(q, kind))

    def new_item_id(self) -> str:
        return str(next(self._ids))  # Emby's item ids are numbers

    # -- auth: X-Emby-Token, or the token inside X-Emby-Authorization, or api_key --
    def token_of(self, req) -> Optional[str]:
        if req.headers.get("X-Emby-Token"):
            return req.headers["X-Emby-Token"]
        for h in ("X-Emby-Authorization", "Authorization"):
            tok = parse_auth_fields(req.headers.get(h, "")).get("Token")
            if tok:
                return tok
        return req.args.get("api_key")

    def _uid_for(self, req, asked: Optional[str]):
        tok = self.token_of(req)
        with self.lock:
            uid = self.tokens.get(tok) if tok else None
        if uid is None:
            return None, self.unauthorized()
        if asked and asked.replace("-", "").lower() != uid:
            return None, json_response({"message": "Forbidden"}, 403)
        return uid, None

    def _item(self, iid):
        with self.lock:
            return self.items.get(str(iid or ""))

    # -- routes -----------------------------------------------------------
    def _info(self):
        return {"ServerName": self.server_name, "Version": self.version, "Id": self.server_id,
                "LocalAddress": self.url + P, "OperatingSystem": "Linux"}

    def system_info_public(self, req):
        return self._info()

    def system_info(self, req):
        uid, err = self._uid_for(req, None)
        return err if err is not None else {**self._info(), "HasPendingRestart": False, "IsShuttingDown": False}

    def authenticate(self, req):
        fields = parse_auth_fields(req.headers.get("X-Emby-Authorization", ""))
        if not all(fields.get(k) for k in ("Client", "Device", "DeviceId", "Version")):
            return self.bad_request("X-Emby-Authorization must name Client, Device, DeviceId and Version")
        body = body_json(req)
        with self.lock:
            user = next((u for u in self.users.values() if u.name.lower() == str(body.get("Username", "")).lower()),
                        None)
        if user is None or user.password != body.get("Pw"):
            return self.unauthorized()
        token = self.issue_token(user.id)
        return {"User": {"Name": user.name, "ServerId": self.server_id, "Id": user.id, "HasPassword": True},
                "SessionInfo": {"UserId": user.id, "Client": fields["Client"], "DeviceId": fields["DeviceId"]},
                "AccessToken": token, "ServerId": self.server_id}

    def _played(self, req, UserId, Id, played: bool):
        uid, err = self._uid_for(req, UserId)
        if err is not None:
            return err
        item = self._item(Id)
        if item is None:
            return self.not_found()
        when = None
        if req.args.get("DatePlayed"):
            # Emby reads DatePlayed as yyyyMMddHHmmss (UTC), nothing else.
            try:
                when = dt.datetime.strptime(req.args["DatePlayed"], "%Y%m%d%H%M%S").replace(
                    tzinfo=dt.timezone.utc).timestamp()
            except ValueError:
                return self.bad_request("DatePlayed must be yyyyMMddHHmmss")
        if played:
            self.mark_played(uid, item.id, when)
        else:
            self.mark_unplayed(uid, item.id)
        return self.user_data_json(uid, item.id)

    def post_user_data(self, req, UserId, ItemId):
        uid, err = self._uid_for(req, UserId)
        if err is not None:
            return err
        item = self._item(ItemId)
        if item is None:
            return self.not_found()
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
        return None

    def get_item(self, req, UserId, Id):
        uid, err = self._uid_for(req, UserId)
        if err is not None:
            return err
        item = self._item(Id)
        return self.not_found() if item is None else self.item_json(uid, item)

    def _list(self, req, asked):
        uid, err = self._uid_for(req, asked)
        if err is not None:
            return err
        a = req.args

        def csv(name):
            return [x.strip() for x in (a.get(name) or "").split(",") if x.strip()]

        items = self.sorted_items()
        ids = csv("Ids")
        if ids:
            items = [i for i in items if i.id in ids]
        elif a.get("Recursive", "false").lower() != "true":
            items = []  # without Recursive the server lists the user's libraries
        types = csv("IncludeItemTypes")
        if types:
            items = [i for i in items if i.type in types]
        wanted = set()
        for pair in csv("AnyProviderIdEquals"):
            name, _, value = pair.partition(".")
            wanted.add((name.lower(), value.lower()))
        if wanted:
            items = [i for i in items
                     if any((k.lower(), str(v).lower()) in wanted for k, v in i.provider_ids.items())]
        if a.get("Path"):
            items = [i for i in items if i.path == a["Path"]]
        start = int(a.get("StartIndex") or 0)
        limit = int(a["Limit"]) if a.get("Limit") else None
        return self.page(uid, items, start, limit, set(csv("Fields")))

    def _session(self, req, kind):
        uid, err = self._uid_for(req, None)
        if err is not None:
            return err
        body = body_json(req)
        item = self._item(body.get("ItemId"))
        if item is None:
            return self.not_found()
        with self.lock:
            self.sessions.append({"kind": kind or "start", "user": uid, **body})
        if kind == "/Stopped":
            self.playback_stopped(uid, item.id, body.get("PositionTicks"))
        return None


if __name__ == "__main__":
    def make(args):
        fake = EmbyFake(host=args.host, port=args.port)
        uid = fake.add_user("alice", "pass")
        fake.add_item("The Matrix", path="/media/movies/The Matrix (1999).mkv",
                      provider_ids={"Imdb": "tt0133093", "Tmdb": "603"}, runtime_s=8160)
        print(f"user alice/pass id={uid}; items: " + ", ".join(f"{i.name}={i.id}" for i in fake.items.values()))
        return fake

    serve_forever_cli(make)
