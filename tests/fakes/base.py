"""Fake HTTP servers that check every request against the server's OpenAPI spec.

A fake is a real HTTP server on 127.0.0.1 (port 0 unless told) in a daemon
thread. Every request is validated with openapi-core against the spec the
fake names; a request the spec rejects is answered 400 and recorded in
``fake.violations``, and so is a request for a route the fake doesn't serve
(answered 404). A test that leaves violations behind fails: ``stop()`` (and
leaving a ``with`` block) raises ``AssertionError``, and the autouse fixture
``fail_on_spec_violations`` (import it into a test module or conftest) fails
the test at teardown when any live fake picked up a violation during it.

Writing a fake::

    from tests.fakes.base import FakeServer, json_response

    class MyFake(FakeServer):
        spec_path = "/work/shared/specs/…/spec.json"
        server_url = "/"              # where the spec's paths are mounted here

        def __init__(self, **kw):
            super().__init__(**kw)
            self.state = {}
            self.route("GET", "/System/Info", self.system_info)
            self.route("POST", "/Items/{itemId}", self.post_item)

        def system_info(self, req):
            return json_response({"ServerName": "x"})

        def post_item(self, req, itemId):   # path params arrive by name
            self.state[itemId] = req.get_json()
            return None                       # None -> 204 No Content

    with MyFake() as fake:                    # started; stopped (and checked) on exit
        requests.get(fake.url + "/System/Info")
        assert fake.requests[-1].path == "/System/Info"

A handler gets a werkzeug ``Request`` (body already read, ``req.get_json()``
works) and returns a werkzeug ``Response``, ``None`` (204), or any JSON-able
object (200 JSON). Handlers run in server threads: guard shared state with
``self.lock`` (an RLock) when a test reads it concurrently.

Misbehaviour (each applies to the next request(s) whatever the route):
    fail_next(status, times=1, retry_after=None, body=None)
    delay(seconds, times=1, body=False)  # sleep before answering, or mid-body
    late_write(seconds, times=1)         # the next write (POST/PUT/DELETE) is applied only after
                                         # `seconds`: past the client's read timeout, it gave up,
                                         # yet the server applies it (reads pass meanwhile);
                                         # fake.late_writes_applied counts them once applied
    reset_next(times=1)                  # TCP reset instead of an answer
    malformed_next(times=1)              # 200 with a broken JSON body
    redirect_next(to_url, status=302, times=1)  # Location: to_url + path?query
    go_down() / come_back()              # refused connections, same port
Request log: ``fake.requests`` (list of ``RecordedRequest``: method, path,
query (dict of lists), headers (case-insensitive), body, json(), client).
HTTPS: ``FakeServer(tls=make_self_signed_cert(tmp_dir))``. Persistent HTTP/1.1
connections, as the real servers keep them: ``FakeServer(keep_alive=True)``.
``fake.clear_log()`` empties it. ``fake.url`` is ``http://127.0.0.1:PORT``.
"""
from __future__ import annotations

import functools
import json
import re
import socket
import ssl
import subprocess
import struct
import threading
import time
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any, Callable, Dict, List, Optional

import pytest
from openapi_core import Config, OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest
from werkzeug.datastructures import Headers
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler
from werkzeug.wrappers import Request, Response

from .persistent import PersistentWSGIServer, TrackedSockets

_LIVE: "set[FakeServer]" = set()
_LIVE_LOCK = threading.Lock()


def json_response(obj: Any, status: int = 200, headers: Optional[dict] = None) -> Response:
    return Response(json.dumps(obj), status=status, headers=headers, content_type="application/json; charset=utf-8")


@functools.lru_cache(maxsize=None)
def load_spec_dict(path: str) -> dict:
    """The parsed spec file, once per process (they are megabytes)."""
    with open(path, encoding="utf-8") as f:
        return json.load(f) if path.endswith(".json") else _load_yaml(f)


def _load_yaml(f):
    import yaml  # pulled in by openapi-core

    return yaml.safe_load(f)


def _without_security(spec: dict) -> dict:
    # The fakes emulate each server's auth themselves (answering 401 as the
    # server does); the specs can't express it faithfully (Jellyfin's
    # MediaBrowser header, Emby's X-Emby-Token, Plex's X-Plex-Token), so
    # security requirements are left to the fake and everything else
    # (methods, paths, parameters, bodies) is validated strictly.
    paths = {}
    for p, item in spec.get("paths", {}).items():
        paths[p] = {m: ({k: v for k, v in op.items() if k != "security"} if isinstance(op, dict) else op)
                    for m, op in item.items()}
    return {**spec, "paths": paths, "security": []}


@functools.lru_cache(maxsize=None)
def openapi_for(path: str, server_url: str) -> OpenAPI:
    """A validator for the spec at ``path``, mounted at ``server_url`` here.

    The specs name hosts that aren't ours (http://localhost,
    http://emby.media/emby): the loaded copy's ``servers`` is replaced so
    requests to 127.0.0.1:PORT match. The spec files are never edited.
    """
    spec = dict(_without_security(load_spec_dict(path)))
    spec["servers"] = [{"url": server_url}]
    # spec_validator_cls=None: the documents are the servers' own; checking
    # the whole document on every load costs seconds and finds nothing new.
    return OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: Dict[str, List[str]]
    headers: Headers
    body: bytes = b""
    host: str = ""
    time: float = field(default_factory=time.time)
    client: tuple = ()  # (address, port) of the client connection
    # (Werkzeug's server answers "Connection: close" every time; keep_alive=True keeps them.)

    def json(self):
        return json.loads(self.body) if self.body else None


@dataclass
class _Trouble:
    kind: str
    times: int
    args: dict
    methods: Optional[tuple] = None  # only requests with these methods meet it (None: any)


class _Handler(WSGIRequestHandler):
    def log_request(self, *a, **k):  # keep test output and caplog clean
        pass

    def log(self, type, message, *args):
        if type == "error":
            super().log(type, message, *args)

    def connection_dropped(self, error, environ=None):
        self.close_connection = True


class _Server(TrackedSockets, ThreadedWSGIServer):
    daemon_threads = True
    block_on_close = False


class FakeServer:
    """Base of every fake: routes, spec validation, misbehaviour, request log."""

    spec_path: Optional[str] = None
    server_url: str = "/"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, tls: Optional[tuple] = None,
                 keep_alive: bool = False):
        """``tls=(certfile, keyfile)`` serves HTTPS (see ``make_self_signed_cert``).
        ``keep_alive``: HTTP/1.1 connections stay open, as on the real servers (see persistent.py)."""
        if keep_alive and tls:
            raise ValueError("keep_alive serves plain HTTP only")
        self.host = host
        self.port = port
        self.tls = tls
        self.keep_alive = keep_alive
        self.lock = threading.RLock()
        self.routes: List[tuple] = []
        self.violations: List[str] = []
        self.requests: List[RecordedRequest] = []
        self._trouble: List[_Trouble] = []
        self.late_writes_applied = 0  # writes held by late_write() that have since been applied
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None
        self._stopping = threading.Event()
        self._openapi = openapi_for(self.spec_path, self.server_url) if self.spec_path else None

    # -- routes ------------------------------------------------------------
    def route(self, method: str, pattern: str, handler: Callable) -> None:
        """Serve ``method pattern`` (``{name}`` matches one path segment)."""
        rx = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(pattern))
        self.routes.append((method.upper(), re.compile("^" + rx + "$"), handler))

    # -- life cycle --------------------------------------------------------
    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def start(self) -> "FakeServer":
        ctx = None
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
        if self.keep_alive:
            self._server = PersistentWSGIServer(self.host, self.port, self._wsgi)
        else:
            self._server = _Server(self.host, self.port, self._wsgi, handler=_Handler, ssl_context=ctx)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{type(self).__name__}:{self.port}", daemon=True)
        self._thread.start()
        with _LIVE_LOCK:
            _LIVE.add(self)
        return self

    def stop(self, check: bool = True) -> None:
        """Stop serving. Raises AssertionError when violations were recorded (unless check=False)."""
        self._stopping.set()
        self._close_listener()
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if check:
            self.assert_no_violations()

    def _close_listener(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.drop_all()
            self._server = None

    def go_down(self) -> None:
        """Stop listening and drop open connections: clients get 'connection refused'."""
        self._close_listener()

    def come_back(self) -> None:
        """Listen again on the same port."""
        if self._server is None:
            self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        self.stop(check=exc_type is None)

    def assert_no_violations(self) -> None:
        if self.violations:
            raise AssertionError(f"{type(self).__name__} saw requests its spec rejects:\n  "
                                 + "\n  ".join(self.violations))

    def clear_log(self) -> None:
        with self.lock:
            self.requests.clear()

    # -- misbehaviour --------------------------------------------------------
    def _add(self, kind: str, times: int, methods: Optional[tuple] = None, **args) -> None:
        with self.lock:
            self._trouble.append(_Trouble(kind, times, args, methods))

    def fail_next(self, status: int, times: int = 1, retry_after=None, body=None,
                  methods: Optional[tuple] = None) -> None:
        """Answer the next ``times`` requests with ``status`` (and Retry-After, and a body);
        ``methods``: only requests with these methods (e.g. the writes), others pass."""
        self._add("fail", times, methods=methods, status=status, retry_after=retry_after, body=body)

    def delay(self, seconds: float, times: int = 1, body: bool = False) -> None:
        """Sleep ``seconds`` before answering, or (body=True) after the first bytes of the body."""
        self._add("delay", times, seconds=seconds, body=body)

    def late_write(self, seconds: float, times: int = 1) -> None:
        """Hold the next ``times`` writes ``seconds`` before applying them (then answer).

        A real server keeps working on a request whose client timed out: with
        ``seconds`` > the client's read timeout, the client sees a timeout and
        the write still lands, ``seconds`` after it arrived.
        """
        self._add("delay", times, methods=("POST", "PUT", "DELETE"), seconds=seconds, body=False)

    def reset_next(self, times: int = 1) -> None:
        self._add("reset", times)

    def malformed_next(self, times: int = 1) -> None:
        self._add("malformed", times)

    def redirect_next(self, to_url: str, status: int = 302, times: int = 1) -> None:
        self._add("redirect", times, to=to_url.rstrip("/"), status=status)

    def reset_trouble(self) -> None:
        with self.lock:
            self._trouble.clear()

    def _take_trouble(self, method: str = "") -> Optional[_Trouble]:
        with self.lock:
            t = next((t for t in self._trouble if t.methods is None or method in t.methods), None)
            if t is None:
                return None
            t.times -= 1
            if t.times <= 0:
                self._trouble.remove(t)
            return t

    # -- validation hooks ----------------------------------------------------
    def validation_environ(self, environ: dict) -> dict:
        """Environ the spec validator sees; subclasses loosen known server leniencies here."""
        return environ

    def validation_body(self, body: bytes) -> bytes:
        """Body the spec validator sees (same purpose as validation_environ)."""
        return body

    def validator_for(self, method: str, path: str) -> Optional[OpenAPI]:
        """The validator for one request; a subclass may pick another document for
        routes a real server serves though its own spec hides them (say why there).
        None skips validation."""
        return self._openapi

    def _validate(self, req: Request, body: bytes) -> Optional[str]:
        api = self.validator_for(req.method, req.path)
        if api is None:
            return None
        env = dict(self.validation_environ(dict(req.environ)))
        body = self.validation_body(body)
        env["wsgi.input"] = BytesIO(body)
        env["CONTENT_LENGTH"] = str(len(body))
        vreq = Request(env)
        try:
            api.validate_request(WerkzeugOpenAPIRequest(vreq))
        except Exception as e:  # every validation error class; keep the detail
            detail = f"{type(e).__name__}: {e}"
            cause = e.__cause__ or getattr(e, "__context__", None)
            if cause is not None:
                detail += f" ({cause})"
            return detail[:2000]
        return None

    # -- WSGI ------------------------------------------------------------
    def _wsgi(self, environ, start_response):
        req = Request(environ)
        body = req.get_data(cache=True)
        rec = RecordedRequest(req.method, req.path, req.args.to_dict(flat=False), Headers(req.headers),
                              body, host=req.host,
                              client=(environ.get("REMOTE_ADDR"), int(environ.get("REMOTE_PORT") or 0)))
        with self.lock:
            self.requests.append(rec)
        resp = self._respond(req, body, environ)
        return resp(environ, start_response)

    def _respond(self, req: Request, body: bytes, environ) -> Response:
        trouble = self._take_trouble(req.method)
        if trouble is not None:
            r = self._misbehave(trouble, req, environ)
            if r is not None:
                return r
        for method, rx, handler in self.routes:
            m = rx.match(req.path)
            if m and method == req.method:
                break
        else:
            msg = f"{req.method} {req.path}: no such route in {type(self).__name__}"
            with self.lock:
                self.violations.append(msg)
            return Response(msg, status=404)
        problem = self._validate(req, body)
        if problem is not None:
            with self.lock:
                self.violations.append(f"{req.method} {req.full_path}: {problem}")
            return Response(problem, status=400, content_type="text/plain")
        out = handler(req, **m.groupdict())
        if trouble is not None and trouble.methods is not None and trouble.kind == "delay":
            with self.lock:
                self.late_writes_applied += 1
        if isinstance(out, Response):
            result = out
        elif out is None:
            result = Response(status=204)
        else:
            result = json_response(out)
        if trouble is not None and trouble.kind == "delay" and trouble.args["body"]:
            result = self._slow_body(result, trouble.args["seconds"])
        return result

    def _misbehave(self, t: _Trouble, req: Request, environ) -> Optional[Response]:
        if t.kind == "fail":
            headers = {}
            if t.args["retry_after"] is not None:
                headers["Retry-After"] = str(t.args["retry_after"])
            body = t.args["body"]
            if isinstance(body, (dict, list)):
                return json_response(body, status=t.args["status"], headers=headers)
            return Response(body or "", status=t.args["status"], headers=headers, content_type="text/plain")
        if t.kind == "delay":
            if not t.args["body"]:
                self._stopping.wait(t.args["seconds"])
            return None
        if t.kind == "reset":
            sock = environ["werkzeug.socket"]
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with self._server.sockets_lock:
                self._server.reset_sockets.add(sock)
            raise ConnectionResetError("fake: reset_next")
        if t.kind == "malformed":
            return Response('{"Items": [{"Id": ', status=200, content_type="application/json")
        if t.kind == "redirect":
            q = ("?" + req.query_string.decode()) if req.query_string else ""
            return Response("", status=t.args["status"], headers={"Location": t.args["to"] + req.path + q})
        raise AssertionError(t.kind)

    def _slow_body(self, resp: Response, seconds: float) -> Response:
        data = resp.get_data()
        half = max(1, len(data) // 2)
        stopping = self._stopping

        def gen():
            yield data[:half]
            stopping.wait(seconds)
            yield data[half:]

        return Response(gen(), status=resp.status_code, headers=list(resp.headers.items()))


@pytest.fixture(autouse=True)
def fail_on_spec_violations():
    """Fail the test when a live fake recorded a violation while it ran.

    Import it (``from tests.fakes.base import fail_on_spec_violations  # noqa: F401``)
    into a test module or a conftest.py to apply it there.
    """
    with _LIVE_LOCK:
        before = {f: len(f.violations) for f in _LIVE}
    yield
    with _LIVE_LOCK:
        live = list(_LIVE)
    new = []
    for f in live:
        new += f.violations[before.get(f, 0):]
    if new:
        pytest.fail("requests the spec rejects:\n  " + "\n  ".join(new), pytrace=False)


def make_self_signed_cert(directory: str, host: str = "127.0.0.1") -> tuple:
    """A throw-away certificate for ``host`` (openssl CLI): returns (certfile, keyfile)."""
    import os

    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    san = f"IP:{host}" if re.fullmatch(r"[\d.]+", host) else f"DNS:{host}"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", f"/CN={host}", "-addext", f"subjectAltName={san}"],
                   check=True, capture_output=True)
    return cert, key


def serve_forever_cli(make_fake: Callable[[Any], FakeServer], add_args: Callable = None) -> None:
    """``python -m tests.fakes.X --port N``: run one fake in the foreground."""
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    if add_args:
        add_args(ap)
    args = ap.parse_args()
    fake = make_fake(args)
    fake.start()
    print(f"{type(fake).__name__} listening on {fake.url}", flush=True)
    try:
        while True:
            time.sleep(1)
            for v in fake.violations[:]:
                print("VIOLATION:", v, flush=True)
                fake.violations.remove(v)
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop(check=False)
