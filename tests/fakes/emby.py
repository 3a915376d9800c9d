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
from .mediabrowser import MediaBrowserFake, PlayRules, parse_auth_fields

SPEC = "/work/shared/specs/emby/emby-openapi_v3-4.8.11.json"
P = "/emby"


class EmbyFake(MediaBrowserFake):
    spec_path = SPEC
    server_url = P  # the spec names http://emby.media/emby; here it's this host, same prefix
    product = "Emby Server"
    version = "4.8.11.0"
    # Emby's source is closed since 3.5 and its SDK documentation (the 4.8.11 OpenAPI document) says
    # only what the routes take, not what they do to play counts or resume points. What is modelled
    # comes from Emby's last open source (github.com/MediaBrowser/Emby, the code Jellyfin forked), read
    # at the commits the code index holds; CONFIRMED there, NOT CONFIRMED for 4.8 (closed):
    #  - a session start counts a play and stamps LastPlayedDate = now, and leaves Played alone for
    #    videos (it sets Played only for non-video items): Emby.Server.Implementations/Session/
    #    SessionManager.cs, private OnPlaybackStart(Guid userId, BaseItem item), commit 035655f.
    #    (Jellyfin differs here: its 10.8-10.11 start clears Played, see tests/fakes/jellyfin.py.)
    #  - progress and stop run UpdatePlayState: under MinResumePct the position is dropped, over
    #    MaxResumePct or at the runtime played at 0, shorter than MinResumeDurationSeconds played,
    #    no runtime played: Emby.Server.Implementations/Library/UserDataManager.cs UpdatePlayState,
    #    commit 04f1931. A stop without a position counts a play and sets Played (SessionManager.cs
    #    OnPlaybackStopped(Guid, BaseItem, long?, bool), commit 035655f).
    #  - idle sessions stopped after 5 minutes without a check-in (SessionManager.cs
    #    CheckForIdlePlayback, timer of 5 min, commit 035655f).
    # NOT CONFIRMED (no open source found for it): PlayedItems with DatePlayed counts one more play,
    # without it at least one (Jellyfin's BaseItem.MarkPlayed, which both forked from); UserData
    # writes set what they name.
    rules = PlayRules(start_resets_played=False)

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
        r("GET", "/Users/{UserId}/Items/{Id}", lambda q, UserId, Id: self._one_item(q, UserId, Id))
        r("GET", "/Users/{UserId}/Items", lambda q, UserId: self._list(q, UserId))
        r("GET", "/Items", lambda q: self._list(q, q.args.get("UserId")))
        r("GET", "/Sessions", self.list_sessions)
        r("GET", "/Videos/{Id}/AdditionalParts", lambda q, Id: self.additional_parts(q, q.args.get("UserId"), Id))
        for suffix, kind in (("", "start"), ("/Progress", "progress"), ("/Stopped", "stopped")):
            r("POST", "/Sessions/Playing" + suffix, lambda q, kind=kind: self._session(q, kind))

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

    sign_in_header = "X-Emby-Authorization"
    sign_in_incomplete = "X-Emby-Authorization must name Client, Device, DeviceId and Version"
    pascal_query = True

    def list_arg(self, args, name):
        return [x.strip() for x in (args.get(name) or "").split(",") if x.strip()]

    def filter_items(self, args, items):
        wanted = set()
        for pair in self.list_arg(args, "AnyProviderIdEquals"):
            name, _, value = pair.partition(".")
            wanted.add((name.lower(), value.lower()))
        if wanted:
            items = [i for i in items
                     if any((k.lower(), str(v).lower()) in wanted for k, v in i.provider_ids.items())]
        if args.get("Path"):
            items = [i for i in items if i.path == args["Path"]]
        return items

    def played_date(self, req, played):
        if not req.args.get("DatePlayed"):
            return None, None
        # Emby reads DatePlayed as yyyyMMddHHmmss (UTC), nothing else.
        try:
            return dt.datetime.strptime(req.args["DatePlayed"], "%Y%m%d%H%M%S").replace(
                tzinfo=dt.timezone.utc).timestamp(), None
        except ValueError:
            return None, self.bad_request("DatePlayed must be yyyyMMddHHmmss")

    # -- routes -----------------------------------------------------------
    def _info(self):
        return {"ServerName": self.server_name, "Version": self.version, "Id": self.server_id,
                "LocalAddress": self.url + P, "OperatingSystem": "Linux"}

    def system_info_public(self, req):
        return self._info()

    def system_info(self, req):
        uid, err = self._uid_for(req, None)
        return err if err is not None else {**self._info(), "HasPendingRestart": False, "IsShuttingDown": False}

    def list_sessions(self, req):
        """The server keeps a session per device and user; a request with a token and a device id
        refreshes it (so the caller's own session always exists here)."""
        uid, err = self._uid_for(req, None)
        if err is not None:
            return err
        device = parse_auth_fields(req.headers.get("X-Emby-Authorization", "")).get("DeviceId", "")
        wanted = req.args.get("DeviceId")
        with self.lock:
            name = self.users[uid].name
        mine = {"Id": f"{uid}-{device}", "UserId": uid, "UserName": name, "DeviceId": device,
                "Client": "Playback Sync"}
        return [mine] if not wanted or wanted == device else []

    def post_user_data(self, req, UserId, ItemId):
        uid, item, err = self._update_user_data(req, UserId, ItemId)
        return err  # Emby answers 204


if __name__ == "__main__":
    def make(args):
        fake = EmbyFake(host=args.host, port=args.port)
        uid = fake.add_user("alice", "pass")
        fake.add_item("The Matrix", path="/media/movies/The Matrix (1999).mkv",
                      provider_ids={"Imdb": "tt0133093", "Tmdb": "603"}, runtime_s=8160)
        print(f"user alice/pass id={uid}; items: " + ", ".join(f"{i.name}={i.id}" for i in fake.items.values()))
        return fake

    serve_forever_cli(make)
