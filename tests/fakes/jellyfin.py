"""A fake Jellyfin server, one per published spec version.

    fake = JellyfinFake(version="10.10.7")   # any of VERSIONS
    fake.start()                              # or `with JellyfinFake(...) as fake:`
    uid = fake.add_user("alice", "pass"); token = fake.issue_token(uid)
    iid = fake.add_item("The Matrix", path="/m/matrix.mkv", provider_ids={"Imdb": "tt0133093"})
    fake.user_data(uid, iid).position_ticks

Seeding and reading state: see tests/fakes/mediabrowser.py. Misbehaviour and
the request log: tests/fakes/base.py. Run alone:
``python -m tests.fakes.jellyfin --port 8096 --version 10.10.7`` (seeds a user
alice/pass and two items, and prints them).
"""
from __future__ import annotations

import re
from typing import Optional
from urllib.parse import parse_qsl, urlencode

from .base import openapi_for, serve_forever_cli
from .mediabrowser import MediaBrowserFake, PlayRules, json_response, norm_id, parse_auth_fields, parse_iso

SPEC_DIR = "/work/shared/specs/jellyfin"
VERSIONS = ("10.8.13", "10.9.11", "10.10.7", "10.11.11", "12.0.0")

# Query parameters the specs type as arrays (repeated keys); servers also take A,B.
ARRAY_PARAMS = {"fields", "ids", "includeItemTypes", "excludeItemTypes", "sortBy", "sortOrder", "filters",
                "mediaTypes", "enableImageTypes", "genres", "tags", "years", "personIds", "excludeItemIds"}

_HEX32 = re.compile(r"(?<![0-9a-fA-F-])([0-9a-fA-F]{8})([0-9a-fA-F]{4})([0-9a-fA-F]{4})([0-9a-fA-F]{4})"
                    r"([0-9a-fA-F]{12})(?![0-9a-fA-F-])")


# What each version DOES, read from jellyfin/jellyfin at the tag (12.0.0 = tag v12.0-rc5, the
# latest 12.0 candidate). Paths are relative to the repository; SM = Emby.Server.Implementations/
# Session/SessionManager.cs, UDM = Emby.Server.Implementations/Library/UserDataManager.cs,
# BI = MediaBrowser.Controller/Entities/BaseItem.cs, AC = Jellyfin.Server.Implementations/
# Security/AuthorizationContext.cs, IC = Jellyfin.Api/Controllers/ItemsController.cs.
#
# Shared by every version (line numbers at 10.8.13 / 12.0-rc5):
#  - resume defaults MinResumePct 5, MaxResumePct 90, MinResumeDurationSeconds 300:
#    MediaBrowser.Model/Configuration/ServerConfiguration.cs:134,140,146 (10.8.13).
#  - OnPlaybackStart(user, item): PlayCount++ and LastPlayedDate = now (SM:734-735 / SM:845-846).
#  - OnPlaybackProgress(user, item, info): UpdatePlayState on the position, no count change
#    (SM:822-832 / SM:962-972). A progress report needs no start before it (SM:761-815).
#  - OnPlaybackStopped(user, item, pos): UpdatePlayState when a position is given, else
#    PlayCount++, Played, position 0 (SM:1009-1030 / SM:1162-1183).
#  - UpdatePlayState: below MinResumePct -> position 0; above MaxResumePct or at the end -> Played,
#    position 0; else shorter than MinResumeDurationSeconds -> Played, position 0; no runtime ->
#    Played (UDM:216-290 at 10.8.13, UDM:439-510 at 12.0-rc5). It never clears Played.
#  - MarkPlayed(user, datePlayed): with a date PlayCount++, then PlayCount = max(PlayCount, 1);
#    position 0; Played (BI:1840-1870 at 10.8.13, BI:2137-2167 at 12.0-rc5).
#  - MarkUnplayed: PlayCount 0, position 0, LastPlayedDate null, Played false (BI:1877-1893).
#  - Idle: every 5 min, a playing session without a check-in for over 5 min is stopped at its
#    last position (SM:589 and SM:601-630 at 10.8.13; SM:606, SM:636-663 at 12.0-rc5).
# Per version:
#  - Played=false on start: 10.8.13 SM:743, 10.9.11 SM:756, 10.10.7 SM:773, 10.11.11 SM:827;
#    gone at 12.0-rc5 (SM:841-853 only sets Played for items without resume).
#  - End counts from runtime - 1 s: 10.11.11 UDM:315 and 12.0-rc5 UDM:458 (before: >= runtime).
#  - MarkPlayed without a date keeps LastPlayedDate: from 10.9.11 (BI:1840); 10.8.13 sets now (BI:1866).
#  - POST UserItems/{id}/UserData (sets the named fields: UDM SaveUserData(dto), 10.9.11 UDM:84-125):
#    from 10.9.11 (IC:1013-1036); 10.8.13 has no UserData write route at all.
#  - Legacy credentials (X-Emby-Token, X-MediaBrowser-Token, api_key, X-Emby-Authorization, the
#    "Emby" scheme) behind EnableLegacyAuthorization: AC:93-110, AC:233-259 (10.11.11 and 12.0-rc5);
#    default true at 10.11.11 (ServerConfiguration.cs:290), false at 12.0-rc5 (ServerConfiguration.cs:290,
#    and migration Jellyfin.Server/Migrations/Routines/20260531160000_DisableLegacyAuthorization.cs:27
#    turns it off on upgraded servers). ApiKey= in the query and "MediaBrowser" in Authorization
#    stay accepted (AC:103-106, AC:258). Before 10.11 they are accepted unconditionally (AC:86-102 at 10.8.13).
#  - An admin token's UserData write lands on the admin, not on userId: jellyfin#15733 (reported on
#    10.11.4). NOT confirmed in source: IC:1021 at 10.9.11 does read userId. Modelled from 10.9 on
#    (where the route exists) because a client must not depend on it either way.
def rules_for(version: str) -> PlayRules:
    v = _vt(version)
    return PlayRules(start_resets_played=v < (12,), end_slack_ticks=10_000_000 if v >= (10, 11) else 0,
                     mark_played_keeps_date=v >= (10, 9), user_data_route=v >= (10, 9),
                     user_data_writes_token_user=v >= (10, 9))


def spec_path(version: str) -> str:
    return f"{SPEC_DIR}/jellyfin-openapi-{version}.json"


def _vt(version: str):
    return tuple(int(x) for x in version.split("."))


class JellyfinFake(MediaBrowserFake):
    product = "Jellyfin Server"

    def __init__(self, version: str = "10.10.7", server_name: str = "Fake Jellyfin", **kw):
        if version not in VERSIONS:
            raise ValueError(f"no spec for Jellyfin {version}; have {VERSIONS}")
        self.spec_path = spec_path(version)
        self.version = version
        self.rules = rules_for(version)
        super().__init__(server_name=server_name, **kw)
        self.legacy_auth_enabled = _vt(version) < (12,)  # EnableLegacyAuthorization's default (see above)
        self._legacy_api = openapi_for(spec_path("10.8.13"), "/")
        r = self.route
        r("GET", "/System/Info/Public", self.system_info_public)
        r("GET", "/System/Info", self.system_info)
        r("POST", "/Users/AuthenticateByName", self.authenticate)
        r("POST", "/Sessions/Playing", self.session_playing)
        r("POST", "/Sessions/Playing/Progress", self.session_progress)
        r("POST", "/Sessions/Playing/Stopped", self.session_stopped)
        r("GET", "/Items", self.list_items)
        r("GET", "/Users/Me", self.users_me)
        r("GET", "/Videos/{itemId}/AdditionalParts",
          lambda q, itemId: self.additional_parts(q, q.args.get("userId"), itemId))
        # 10.8 routes; newer servers still serve them though their specs hide them.
        r("POST", "/Users/{userId}/PlayedItems/{itemId}", self.legacy_played)
        r("DELETE", "/Users/{userId}/PlayedItems/{itemId}", self.legacy_unplayed)
        r("GET", "/Users/{userId}/Items/{itemId}", self.legacy_get_item)
        r("GET", "/Users/{userId}/Items", self.legacy_list_items)
        if _vt(version) >= (10, 9):
            r("POST", "/UserPlayedItems/{itemId}", self.played)
            r("DELETE", "/UserPlayedItems/{itemId}", self.unplayed)
            r("GET", "/UserItems/{itemId}/UserData", self.get_user_data)
            r("POST", "/UserItems/{itemId}/UserData", self.post_user_data)
            r("GET", "/Items/{itemId}", self.get_item)

    # -- validation: the leniencies real servers have ----------------------
    def validator_for(self, method, path):
        # The 10.8 routes above are hidden from the 10.9+ specs but still served
        # (see the specs README): validate them against the 10.8 document, where
        # they are described.
        if _vt(self.version) >= (10, 9) and re.match(r"^/Users/[^/]+/(PlayedItems|Items)(/[^/]+)?$", path):
            return self._legacy_api
        return self._openapi

    def validation_environ(self, environ):
        env = dict(environ)
        # Jellyfin hands out ids as 32 hex digits and takes them back so, but the
        # specs type them format: uuid (dashed): dash them for the validator only.
        dash = lambda m: "-".join(m.groups())  # noqa: E731
        env["PATH_INFO"] = _HEX32.sub(dash, env.get("PATH_INFO", ""))
        pairs = []
        for k, v in parse_qsl(env.get("QUERY_STRING", ""), keep_blank_values=True):
            # The servers take comma-separated lists too; the specs say repeated keys.
            vals = v.split(",") if k in ARRAY_PARAMS else [v]
            pairs += [(k, _HEX32.sub(dash, x)) for x in vals]
        env["QUERY_STRING"] = urlencode(pairs)
        return env

    def validation_body(self, body):
        # Same id leniency for ids inside JSON bodies (ItemId of a session report).
        return _HEX32.sub(lambda m: "-".join(m.groups()), body.decode("utf-8", "replace")).encode() if body else body

    # -- auth -----------------------------------------------------------
    def token_of(self, req) -> Optional[str]:
        """AuthorizationContext.GetAuthorizationInfo's order (AC:84-110)."""
        legacy = self.legacy_auth_enabled
        auth = req.headers.get("Authorization", "") or (req.headers.get("X-Emby-Authorization", "") if legacy else "")
        schemes = ("mediabrowser", "emby") if legacy else ("mediabrowser",)
        tok = parse_auth_fields(auth).get("Token") if auth.split(" ", 1)[0].lower() in schemes else None
        if not tok and legacy:
            tok = req.headers.get("X-Emby-Token") or req.headers.get("X-MediaBrowser-Token")
        if not tok:
            tok = req.args.get("ApiKey")
        if not tok and legacy:
            tok = req.args.get("api_key")
        return tok or None

    def item_key(self, iid) -> str:
        return norm_id(iid)

    def bad_credentials(self):
        return json_response({"message": "Invalid username or password entered."}, 401)

    def saved_since(self, args, items):
        # SqliteItemRepository.cs:3557-3566 at v10.8.13 (3256-3265 at v10.10.7): minDateLastSaved adds
        # "DateLastSaved>=@MinDateLastSavedForUser" but binds another name, so alone it compares with
        # NULL and matches nothing; minDateLastSavedForUser binds the name both clauses read.
        for_user = args.get("minDateLastSavedForUser")
        if args.get("minDateLastSaved") and not for_user and _vt(self.version) < (10, 11):
            return []
        since = for_user or args.get("minDateLastSaved")
        return items if not since else [i for i in items if i.saved_at >= parse_iso(since)]

    def played_date(self, req, played):
        return (parse_iso(req.args.get("datePlayed")) if played else None), None

    # -- routes ---------------------------------------------------------
    def _info(self):
        return {"LocalAddress": self.url, "ServerName": self.server_name, "Version": self.version,
                "ProductName": self.product, "OperatingSystem": "Linux", "Id": self.server_id,
                "StartupWizardCompleted": True}

    def system_info_public(self, req):
        return self._info()

    def system_info(self, req):
        if self.user_of(req) is None:
            return self.unauthorized()
        return {**self._info(), "OperatingSystemDisplayName": "Linux", "HasPendingRestart": False,
                "IsShuttingDown": False, "SupportsLibraryMonitor": True, "CanSelfRestart": False}

    def users_me(self, req):
        uid = self.user_of(req)
        if uid is None:
            return self.unauthorized()
        with self.lock:
            user = self.users[uid]
        return {"Name": user.name, "ServerId": self.server_id, "Id": user.id, "HasPassword": True}

    def session_playing(self, req):
        return self._session(req, "start")

    def session_progress(self, req):
        return self._session(req, "progress")

    def session_stopped(self, req):
        return self._session(req, "stopped")

    def played(self, req, itemId):
        return self._played(req, req.args.get("userId"), itemId, True)

    def unplayed(self, req, itemId):
        return self._played(req, req.args.get("userId"), itemId, False)

    def legacy_played(self, req, userId, itemId):
        return self._played(req, userId, itemId, True)

    def legacy_unplayed(self, req, userId, itemId):
        return self._played(req, userId, itemId, False)

    def get_user_data(self, req, itemId):
        uid, item, err = self.user_item(req, req.args.get("userId"), itemId)
        return err if err is not None else self.user_data_json(uid, item.id)

    def post_user_data(self, req, itemId):
        uid, item, err = self._update_user_data(req, req.args.get("userId"), itemId)
        return err if err is not None else self.user_data_json(uid, item.id)

    def get_item(self, req, itemId):
        return self._one_item(req, req.args.get("userId"), itemId)

    def legacy_get_item(self, req, userId, itemId):
        return self._one_item(req, userId, itemId)

    def list_items(self, req):
        return self._list(req, req.args.get("userId"))

    def legacy_list_items(self, req, userId):
        return self._list(req, userId)


def _seed_demo(fake: JellyfinFake) -> None:
    uid = fake.add_user("alice", "pass")
    fake.add_item("The Matrix", path="/media/movies/The Matrix (1999).mkv",
                  provider_ids={"Imdb": "tt0133093", "Tmdb": "603"}, runtime_s=8160)
    fake.add_item("Big Buck Bunny", path="/media/movies/Big Buck Bunny.mkv", provider_ids={"Tmdb": "10378"},
                  runtime_s=596)
    print(f"user alice/pass id={uid}; items: " + ", ".join(f"{i.name}={i.id}" for i in fake.items.values()))


if __name__ == "__main__":
    def make(args):
        fake = JellyfinFake(version=args.version, host=args.host, port=args.port)
        _seed_demo(fake)
        return fake

    serve_forever_cli(make, lambda ap: ap.add_argument("--version", default="10.10.7", choices=VERSIONS))
