"""A fake Plex Media Server, and a minimal fake plex.tv for PIN sign-in.

Every request is validated against the 2025 PMS description
(plex-api-spec.dedup.yaml). Two leniencies of the real server are kept, each
checked against the document that describes it:

* GET /:/timeline, /:/scrobble and /:/unscrobble: real servers still answer
  these older forms; they are validated against the pre-overhaul spec.
* The token: the spec leaves auth to the fake (see base), which answers 401
  like Plex does. A token in the query string is accepted by real servers but
  recorded here as a violation: this project sends it only as a header.

Run alone: ``python -m tests.fakes.plex --port 32400 --token secret``.
"""
from __future__ import annotations

import re
import secrets
import threading
import xml.etree.ElementTree as ET
from typing import Dict, Optional

from werkzeug.wrappers import Request, Response

from tests.fakes.base import FakeServer, json_response, openapi_for, serve_forever_cli
from tests.fakes.plex_state import TYPE_NUMBERS, Item, PlexLibrary

SPEC = "/work/shared/specs/plex/plex-api-spec.dedup.yaml"
OLD_SPEC = "/work/shared/specs/plex/plex-api-spec-pre-overhaul-dereferenced.yaml"
_LEGACY_GETS = {"/:/timeline", "/:/scrobble", "/:/unscrobble"}
MACHINE_ID = "fa4e0c3f9d8a4b2e9c1d7f6a5b4c3d2e"
VERSION = "1.41.3.9314-a0bfb8370"


class FakePlex(FakeServer):
    spec_path = SPEC
    server_url = "/"

    def __init__(self, *, token: str = "plex-token-0123456789", seed: bool = True,
                 friendly_name: str = "Fake Plex", **kw):
        super().__init__(**kw)
        self.library = PlexLibrary()
        self.friendly_name = friendly_name
        self.machine_id = MACHINE_ID  # the identity the server gives itself; a reinstall makes a new one
        self.refuse_filters = False  # test hook: a server that answers 400 to listing filters
        self.token = token
        self.library.add_user(token, "owner")
        if seed:
            self.library.seed()
        for method, pattern, handler in (
            ("GET", "/identity", self.identity),
            ("GET", "/", self.root),
            ("GET", "/library/sections/all", self.sections),
            ("GET", "/library/sections/{sectionId}/all", self.section_all),
            ("GET", "/library/metadata/{ids}", self.metadata),
            ("PUT", "/:/scrobble", self.scrobble),
            ("GET", "/:/scrobble", self.scrobble),
            ("PUT", "/:/unscrobble", self.unscrobble),
            ("GET", "/:/unscrobble", self.unscrobble),
            ("POST", "/:/timeline", self.timeline),
            ("GET", "/:/timeline", self.timeline),
        ):
            self.route(method, pattern, handler)

    # --- validation ---------------------------------------------------------------
    def validator_for(self, method: str, path: str):
        if method == "GET" and path in _LEGACY_GETS:
            # Only the pre-overhaul document describes these GET forms; real servers accept them.
            return openapi_for(OLD_SPEC, "/")
        return super().validator_for(method, path)

    def _validate(self, req: Request, body: bytes) -> Optional[str]:
        if "X-Plex-Token" in req.args:
            return "X-Plex-Token in the URL: send it as a header (URLs end up in logs)"
        return super()._validate(req, body)

    # --- helpers ---------------------------------------------------------------------
    def _user(self, req: Request) -> Optional[str]:
        token = req.headers.get("X-Plex-Token", "")
        return token if token in self.library.users else None

    def _answer(self, req: Request, container: dict, headers: Optional[dict] = None) -> Response:
        """JSON when the client asks for it; otherwise XML, Plex's default."""
        if "application/json" in req.headers.get("Accept", ""):
            return json_response({"MediaContainer": container}, headers=headers)
        return Response(ET.tostring(_to_xml("MediaContainer", container), encoding="unicode"),
                        status=200, headers=headers, content_type="application/xml")

    @staticmethod
    def _plain(status: int, text: str) -> Response:
        return Response(f"<html><head><title>{text}</title></head><body><h1>{status} {text}</h1></body></html>",
                        status=status, content_type="text/html")

    def _unauthorized(self) -> Response:
        return self._plain(401, "Unauthorized")

    # --- handlers ----------------------------------------------------------------------
    def identity(self, req):
        # Answers without a token, as Plex does.
        return self._answer(req, {"size": 0, "claimed": True, "machineIdentifier": self.machine_id,
                                  "version": VERSION})

    def root(self, req):
        if not self._user(req):
            return self._unauthorized()
        return self._answer(req, {
            "size": 1, "friendlyName": self.friendly_name, "machineIdentifier": self.machine_id,
            "version": VERSION, "platform": "Linux", "myPlex": True,
            "Directory": [{"key": "library", "title": "library", "count": 1}],
        })

    def sections(self, req):
        if not self._user(req):
            return self._unauthorized()
        dirs = [self.library.section_json(s) for s in self.library.sections.values()]
        return self._answer(req, {"size": len(dirs), "allowSync": False, "title1": "Plex Library",
                                  "Directory": dirs})

    def section_all(self, req, sectionId):
        token = self._user(req)
        if not token:
            return self._unauthorized()
        section = self.library.sections.get(sectionId)
        if section is None:
            return self._plain(404, "Not Found")
        # Plex lists a section's top-level type unless ?type= asks for another.
        want = _int(req.args.get("type") or (1 if section.type == "movie" else 2))
        if want not in TYPE_NUMBERS.values():
            return self._plain(400, "Bad Request")
        items = [i for i in self.library.items.values()
                 if i.section == sectionId and TYPE_NUMBERS.get(i.type) == want]
        # Filter syntax of the listing, as python-plexapi 4.16.1 builds it (plexapi/library.py):
        # updatedAt is a "date" field Plex serves but does not list (_manualFields, 2775-2848); a field
        # of a type other than movie is prefixed with that type, "episode.updatedAt" (2835); the date
        # operator ">>" means "is after" (1469) and goes out as the parameter "updatedAt>>" = epoch
        # seconds (_validateFilterField 1061-1093, _validateFieldValueDate). Plex is closed source: what
        # bumps updatedAt (a rescan, a moved file) is not confirmed, and a deleted item leaves no trace
        # in a filtered listing, so the client compares item counts to catch deletions.
        if self.refuse_filters and any(k.endswith(">>") for k in req.args):
            return self._plain(400, "Bad Request")
        own = "movie" if section.type == "movie" else "show"
        wanted = next((name for name, number in TYPE_NUMBERS.items() if number == want), own)
        field = "updatedAt>>" if wanted == own else wanted + ".updatedAt>>"
        after = _int(req.args.get(field))
        if after is not None:
            items = [i for i in items if i.updated() > after]
        items.sort(key=lambda i: int(i.rating_key))
        total = len(items)
        start = max(0, _int(req.args.get("X-Plex-Container-Start")) or 0)
        size = _int(req.args.get("X-Plex-Container-Size"))
        page = items[start:start + max(0, size)] if size is not None else items[start:]
        # Listings carry Guid[] only when asked for (includeGuids=1), as on a real server.
        guids = req.args.get("includeGuids") == "1"
        return self._answer(req, {
            "size": len(page), "totalSize": total, "offset": start,
            "librarySectionID": int(sectionId), "title1": section.title,
            "Metadata": [self.library.item_json(token, i, guids=guids) for i in page],
        }, headers={"X-Plex-Container-Start": str(start), "X-Plex-Container-Total-Size": str(total)})

    def metadata(self, req, ids):
        token = self._user(req)
        if not token:
            return self._unauthorized()
        found = [self.library.items[k] for k in ids.split(",") if k in self.library.items]
        if not found:
            return self._plain(404, "Not Found")
        return self._answer(req, {"size": len(found),
                                  "Metadata": [self.library.item_json(token, i) for i in found]})

    def _scrobble_target(self, req) -> Optional[str]:
        key = req.args.get("key", "")
        if req.args.get("identifier", "com.plexapp.plugins.library") != "com.plexapp.plugins.library":
            return None
        return key if key in self.library.items and self.library.items[key].parts else None

    def _mark(self, req, apply):
        token = self._user(req)
        if not token:
            return self._unauthorized()
        key = self._scrobble_target(req)
        if key is None:
            return self._plain(404, "Not Found")
        apply(token, key)
        return Response(status=200)

    def scrobble(self, req):
        return self._mark(req, self.library.scrobble)

    def unscrobble(self, req):
        return self._mark(req, self.library.unscrobble)

    def timeline(self, req):
        token = self._user(req)
        if not token:
            return self._unauthorized()
        q = req.args
        key = q.get("ratingKey") or q.get("key", "").rsplit("/", 1)[-1]
        item = self.library.items.get(key)
        if item is None or not item.parts:
            return self._plain(400, "Bad Request")  # the spec lists no 404 here
        session = (req.headers.get("X-Plex-Session-Identifier") or q.get("X-Plex-Session-Identifier")
                   or req.headers.get("X-Plex-Client-Identifier", ""))
        updated = _int(q.get("updated")) if q.get("offline") == "1" else None
        self.library.timeline(token, key, q.get("state", "playing"), _int(q.get("time")),
                              _int(q.get("duration")), session=session, updated=updated)
        return self._answer(req, {"size": 0})


def _int(v) -> Optional[int]:
    try:
        return int(float(v))
    except (TypeError, ValueError):
        return None


def _to_xml(tag: str, data: dict) -> ET.Element:
    el = ET.Element(tag)
    for k, v in data.items():
        if isinstance(v, list):
            for child in v:
                el.append(_to_xml(k, child))
        elif isinstance(v, bool):
            el.set(k, "1" if v else "0")
        elif v is not None:
            el.set(k, str(v))
    return el


class FakePlexTV(FakeServer):
    """plex.tv's PIN endpoints, minimal: shared/specs holds no plex.tv description, so
    nothing is spec-validated here; it only checks the headers plex.tv insists on."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.pins: Dict[int, dict] = {}
        self._next = 4000
        self._pins_lock = threading.Lock()
        self.route("POST", "/api/v2/pins", self.create_pin)
        self.route("GET", "/api/v2/pins/{pin_id}", self.get_pin)

    def _client(self, req) -> Optional[str]:
        cid = req.headers.get("X-Plex-Client-Identifier")
        if not cid or not req.headers.get("X-Plex-Product"):
            self.violations.append(f"{req.method} {req.path}: X-Plex-Client-Identifier and X-Plex-Product are required")
        return cid

    def create_pin(self, req):
        cid = self._client(req)
        with self._pins_lock:
            self._next += 1
            pin = {"id": self._next, "code": secrets.token_hex(2).upper(), "clientIdentifier": cid,
                   "authToken": None, "expiresIn": 900, "trusted": False}
            self.pins[pin["id"]] = pin
        return json_response(pin, status=201)

    def get_pin(self, req, pin_id):
        cid = self._client(req)
        pin = self.pins.get(_int(pin_id))
        if pin is None or pin["clientIdentifier"] != cid:
            return json_response({"errors": [{"code": 1020, "message": "Code not found or expired"}]},
                                 status=404)
        return json_response(pin)

    def link(self, code: str, token: str) -> None:
        """What the viewer does at plex.tv/link: the PIN with this code gets the account's token."""
        with self._pins_lock:
            for pin in self.pins.values():
                if pin["code"] == code:
                    pin["authToken"] = token
                    return
        raise KeyError(code)

    def expire(self, pin_id: int) -> None:
        with self._pins_lock:
            self.pins.pop(pin_id, None)


class PlexHarness:
    """The backend matrix's harness for Plex (tests/backend_matrix.py documents the contract).

    Duck-typed rather than a subclass of backend_matrix.Harness, which imports the fakes.
    """

    kind = "plex"
    token_headers = ("X-Plex-Token",)
    user_credentials = ("alice", "pass-w0rd")  # unused: Plex signs in by PIN, not password

    def __init__(self, version: str = "", token: str = "tok3nSECRETzq81d7c4e0b9a2f6"):
        self.version = version or VERSION
        self.token = token
        self.user_id = ""
        self.fake: Optional[FakePlex] = None
        self._next_key = 5000

    def start(self) -> "PlexHarness":
        self.fake = FakePlex(token=self.token).start()
        return self

    def stop(self) -> None:
        self.fake.stop()

    def server_config(self, **over):
        from playbacksync.config import ServerConfig

        cfg = dict(id="plex-test", type="plex", url=self.fake.url, token=self.token, device_id="test-device",
                   connect_timeout=2.0, read_timeout=5.0)
        cfg.update(over)
        return ServerConfig(**cfg)

    def backend(self, **over):
        from playbacksync.backends import make_backend

        return make_backend(self.server_config(**over))

    def add_item(self, name: str, path: str = "", provider_ids: Optional[Dict[str, str]] = None,
                 runtime_s: float = 3600.0) -> str:
        with self.fake.lock:
            self._next_key += 1
            key = str(self._next_key)
        self.fake.library.add_item(Item(
            rating_key=key, section="1", type="movie", title=name, duration=int(runtime_s * 1000),
            parts=[(int(key) * 10, path or f"/srv/media/Movies/{name}.mkv")],
            guids=[f"{k}://{v}" for k, v in (provider_ids or {}).items()]))
        return key

    def missing_item_id(self) -> str:
        return "987654321"

    def state(self, item_id: str):
        from playbacksync.backends.base import ItemState

        st = self.fake.library.state(self.token, item_id)
        return ItemState(position_ms=st.view_offset, played=st.view_count > 0, play_count=st.view_count,
                         last_played_at=float(st.last_viewed_at) if st.last_viewed_at is not None else None)

    def seed_state(self, item_id: str, position_ms: int = 0, played: bool = False, play_count: int = 0,
                   last_played_at: Optional[float] = None) -> None:
        # Plex keeps no separate played flag: played means a view count above zero.
        count = max(play_count, 1) if played else play_count
        self.fake.library.set_state(self.token, item_id, view_offset=position_ms, view_count=count,
                                    last_viewed_at=int(last_played_at) if last_played_at is not None else None)

    def expected_info(self):
        return self.fake.friendly_name, MACHINE_ID, VERSION

    def list_requests(self) -> int:
        return sum(1 for r in self.fake.requests
                   if r.method == "GET" and re.fullmatch(r"/library/sections/[^/]+/all", r.path)
                   and r.path != "/library/sections/all")

    def sign_in_supported(self) -> bool:
        return False  # PIN sign-in: tests/test_plex_signin.py

    def sign_in(self, username, password):
        raise NotImplementedError("Plex signs in with a plex.tv PIN")


def _main():
    def add(ap):
        ap.add_argument("--token", default="plex-token-0123456789")
        ap.add_argument("--name", default="Fake Plex")

    serve_forever_cli(lambda a: FakePlex(token=a.token, friendly_name=a.name, host=a.host, port=a.port), add)


if __name__ == "__main__":
    _main()
