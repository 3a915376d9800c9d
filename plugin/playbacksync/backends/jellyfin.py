"""Jellyfin 10.8 to 12.0.

10.9 and later take a resume position directly (POST /UserItems/{id}/UserData)
and mark played under /UserPlayedItems; 10.8 has neither: played state lives
under /Users/{userId}/PlayedItems, and the only way to store a position is a
playback report. A session *start* (/Sessions/Playing) counts a play and clears
the played flag on the server (SessionManager.OnPlaybackStart), so 10.8 gets a
paused progress report and a stop at the position, never a start: both only
run the server's resume rules (UserDataManager.UpdatePlayState), which keep the
play count and the played flag. Those rules also mark an item played when it
is shorter than MinResumeDurationSeconds (300 s by default) or when the server
knows no runtime for it, so on 10.8 a position for such an item is not sent at
all (logged): a partial viewing must not become a watched one. The version
comes from /System/Info.
"""
from __future__ import annotations

import logging
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from ..changes import PROGRESS, UNWATCHED, WATCHED, Change
from ..config import ServerConfig
from .base import Backend, IndexedItem, ItemState, NotFoundError, PermanentError, ServerInfo, chunks
from .http import HttpClient
from .mediabrowser import (LIST_FIELDS, PLAYABLE_TYPES, client_fields, device_id_for, iso_utc,
                           item_state, listing_states, ms_to_ticks, need_json_dict, paged_items, part_paths,
                           refuse_other_users_token, session_report, since_param, sign_in_request, ticks_to_ms,
                           version_tuple, with_parts)

log = logging.getLogger(__name__)

# The server's MinResumeDurationSeconds default (ServerConfiguration.cs at every 10.x tag).
# Reading the server's own value takes an administrator's token, which Playback Sync never uses.
MIN_RESUME_DURATION_MS = 300_000


def auth_header(device_id: str, token: str = "") -> str:
    return "MediaBrowser " + client_fields(device_id, token)


def sign_in(url: str, username: str, password: str, *, device_id: str = "", verify_tls: bool = True,
            ca_bundle: str = "", connect_timeout: float = 5.0, read_timeout: float = 15.0) -> Tuple[str, str]:
    """Sign in with a user name and password: returns (token, user id)."""
    server = ServerConfig(id="sign-in", type="jellyfin", url=url, verify_tls=verify_tls, ca_bundle=ca_bundle,
                          device_id=device_id, connect_timeout=connect_timeout, read_timeout=read_timeout)
    headers = {"Authorization": auth_header(device_id_for(server))}
    return sign_in_request(server, "/Users/AuthenticateByName", headers, username, password)


class JellyfinBackend(Backend):
    def __init__(self, server: ServerConfig):
        self.server = server
        self.http = HttpClient(server, headers={"Authorization": auth_header(device_id_for(server), server.token)})
        self._version: Optional[tuple] = None
        self._user_id = server.user_id

    # -- helpers ------------------------------------------------------------
    def _modern(self) -> bool:
        """True from 10.9 on (UserData and UserPlayedItems routes)."""
        if self._version is None:
            self.check()
        return not self._version or self._version >= (10, 9)

    def _uid(self) -> str:
        if not self._user_id:
            me = need_json_dict(self.http.request("GET", "/Users/Me"), "GET /Users/Me")
            if not me.get("Id"):
                raise PermanentError("GET /Users/Me: the server didn't say who this token belongs to")
            self._user_id = str(me["Id"])
        return self._user_id

    # -- contract -------------------------------------------------------------
    def check(self) -> ServerInfo:
        d = need_json_dict(self.http.request("GET", "/System/Info"), "GET /System/Info")
        info = ServerInfo(name=str(d.get("ServerName") or ""), server_id=str(d.get("Id") or ""),
                          version=str(d.get("Version") or ""), product=str(d.get("ProductName") or "Jellyfin"))
        self._version = version_tuple(info.version)
        if self.server.user_id:
            me = need_json_dict(self.http.request("GET", "/Users/Me"), "GET /Users/Me")
            refuse_other_users_token(self.server, str(me.get("Id") or ""), str(me.get("Name") or ""))
        return info

    def apply(self, change: Change) -> None:
        uid, iid = self._uid(), change.media_item_id
        when = change.created_at or None
        if change.change_type == PROGRESS:
            ticks = ms_to_ticks(change.position_ms)
            if self._modern():
                body = {"PlaybackPositionTicks": ticks}
                if when:
                    body["LastPlayedDate"] = iso_utc(when)
                if change.play_count_to is not None:  # the viewing's play, as its start would have counted it
                    body["PlayCount"] = change.play_count_to
                    if self._version and self._version < (12,):
                        # ... and as that start clears the played flag before 12.0 (SessionManager's
                        # OnPlaybackStart; this write is the viewing's first effect on the server).
                        body["Played"] = False
                self.http.request("POST", f"/UserItems/{iid}/UserData", params={"userId": uid}, json=body)
            else:
                self._legacy_position(uid, iid, ticks, counts_play=change.play_count_to is not None)
        elif change.change_type in (WATCHED, UNWATCHED):
            method = "POST" if change.change_type == WATCHED else "DELETE"
            params = {"datePlayed": iso_utc(when)} if (when and method == "POST") else {}
            if self._modern():
                self.http.request(method, f"/UserPlayedItems/{iid}", params={"userId": uid, **params})
            else:
                self.http.request(method, f"/Users/{uid}/PlayedItems/{iid}", params=params or None)
        else:  # Change validates its type; kept for safety
            raise PermanentError(f"unknown change type {change.change_type!r}")

    def _legacy_position(self, uid: str, iid: str, ticks: int, counts_play: bool = False) -> None:
        """10.8: a paused progress report and a stop at the position, without a start (see the module
        doc). ``counts_play``: the viewing's live start never reached the server, so this write starts
        the session the viewing's own client would have started: 10.8 has no other way to count a
        play without marking the item played (the date is the server's now, not the viewing's)."""
        d = need_json_dict(self.http.request("GET", f"/Users/{uid}/Items/{iid}"), "GET item")
        runtime_ms = ticks_to_ms(d.get("RunTimeTicks"))
        if runtime_ms < MIN_RESUME_DURATION_MS:
            log.info("Jellyfin 10.8 keeps no resume point for an item shorter than 5 minutes (or of unknown "
                     "length): it would mark it watched instead; position not sent for item %s", iid)
            return
        report = {"ItemId": iid, "PositionTicks": ticks, "CanSeek": True, "IsPaused": True,
                  "PlayMethod": "DirectPlay"}
        if counts_play:
            self.http.request("POST", "/Sessions/Playing", json=report, expect_json=False)
        self.http.request("POST", "/Sessions/Playing/Progress", json=report, expect_json=False)
        self.http.request("POST", "/Sessions/Playing/Stopped", json={"ItemId": iid, "PositionTicks": ticks},
                          expect_json=False)

    def read_state(self, item_id: str) -> ItemState:
        uid = self._uid()
        if self._modern():
            data = self.http.request("GET", f"/UserItems/{item_id}/UserData", params={"userId": uid})
            return item_state(need_json_dict(data, "GET UserData"))
        d = need_json_dict(self.http.request("GET", f"/Users/{uid}/Items/{item_id}"), "GET item")
        return item_state(d.get("UserData"))

    def item_states(self, item_ids: Sequence[str]) -> Dict[str, ItemState]:
        """One GET /Items?ids=… with user data per chunk (/Users/{id}/Items on 10.8; ItemsController)."""
        uid, out = self._uid(), {}
        for ids in chunks(item_ids, self.STATES_PER_REQUEST):
            if self._modern():
                path, params = "/Items", {"userId": uid}
            else:
                path, params = f"/Users/{uid}/Items", {}
            params.update(ids=",".join(ids), enableUserData="true")
            out.update(listing_states(need_json_dict(self.http.request("GET", path, params=params), f"GET {path}")))
        return out

    def report_playback(self, state: str, item_id: str, position_ms: int, *, duration_ms: Optional[int],
                        paused: bool, play_session_id: str) -> None:
        session_report(self.http, state, item_id, position_ms, paused, play_session_id)

    def get_item(self, item_id: str) -> Optional[IndexedItem]:
        uid = self._uid()
        path = f"/Items/{item_id}" if self._modern() else f"/Users/{uid}/Items/{item_id}"
        params = {"userId": uid} if self._modern() else None
        try:
            d = need_json_dict(self.http.request("GET", path, params=params), "GET item")
        except NotFoundError:
            return None
        return with_parts(d, self._additional_parts)

    def _additional_parts(self, item_id: str) -> List[str]:
        """The files of a stacked video's further parts (VideosController.cs:93-130 at v10.10.7)."""
        answer = self.http.request("GET", f"/Videos/{item_id}/AdditionalParts", params={"userId": self._uid()})
        return part_paths(answer)

    def identity(self) -> str:
        d = need_json_dict(self.http.request("GET", "/System/Info/Public"), "GET /System/Info/Public")
        return str(d.get("Id") or "")

    def _list_params(self, since: Optional[float]) -> dict:
        return {"userId": self._uid(), "recursive": "true", "includeItemTypes": list(PLAYABLE_TYPES),
                "enableUserData": "false", **since_param(since)}

    def iter_items(self, page_size: Optional[int] = None, *,
                   since: Optional[float] = None) -> Iterator[IndexedItem]:
        size = page_size or self.page_size
        base = dict(self._list_params(since), fields=list(LIST_FIELDS), sortBy=["SortName"], limit=size)

        def fetch(start: int) -> dict:
            params = dict(base, startIndex=start)
            return need_json_dict(self.http.request("GET", "/Items", params=params), "GET /Items")

        yield from paged_items(fetch, size, self._additional_parts)

    def count_items(self) -> Optional[int]:
        d = need_json_dict(self.http.request("GET", "/Items", params=dict(self._list_params(None), limit=0)),
                           "GET /Items")
        total = d.get("TotalRecordCount")
        return total if isinstance(total, int) else None

    def close(self) -> None:
        self.http.close()


__all__ = ["JellyfinBackend", "sign_in", "auth_header"]
