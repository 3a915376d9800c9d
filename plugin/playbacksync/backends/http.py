"""The HTTP layer every backend shares: one keep-alive session per server,
explicit timeouts, verified TLS, failures mapped to the backend error kinds,
tokens kept out of every message and away from every other host.
"""
from __future__ import annotations

import email.utils
import os
import socket
import threading
import time
import weakref
from typing import Any, Dict, Iterable, Optional
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from .. import __version__
from ..config import ServerConfig
from ..redact import redact, register_secret  # noqa: F401  (re-exported: older imports)
from .base import AuthError, NotFoundError, PermanentError, TransientError  # noqa: F401
from .wording import in_words

USER_AGENT = f"PlaybackSync/{__version__} (+python-requests/{requests.__version__})"

# Headers that carry a credential; none of them may follow a redirect to another origin.
TOKEN_HEADERS = ("Authorization", "X-Emby-Authorization", "X-Emby-Token", "X-MediaBrowser-Token",
                 "X-Plex-Token", "Proxy-Authorization")



def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Retry-After as seconds from now: delta-seconds or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _origin(url: str):
    p = urlsplit(url)
    port = p.port or {"http": 80, "https": 443}.get(p.scheme.lower())
    return p.scheme.lower(), (p.hostname or "").lower(), port


class _SameOriginSession(requests.Session):
    """A Session that never lets a credential header leave the server's origin.

    requests drops ``Authorization`` on a cross-host redirect but keeps custom
    headers such as X-Plex-Token and X-Emby-Token, and lets http->https keep
    it; here any change of scheme, host or port strips every token header.
    """

    def __init__(self, origin_url: str):
        super().__init__()
        self._origin = _origin(origin_url)

    def rebuild_auth(self, prepared_request, response):
        super().rebuild_auth(prepared_request, response)
        if _origin(prepared_request.url) != self._origin:
            for h in TOKEN_HEADERS:
                prepared_request.headers.pop(h, None)


class _AbortableAdapter(HTTPAdapter):
    """An adapter whose open connections can be cut from another thread (``abort``).

    A thread blocked reading a slow server's answer cannot be interrupted in
    Python; shutting its socket down makes the read return at once with an
    error. The worker does this when ``stop()`` reaches its deadline, so no
    thread it started outlives it (the request's outcome is then unknown: the
    row stays in doubt). Connections are tracked while open, per adapter.
    """

    def __init__(self):
        self._open: "weakref.WeakSet" = weakref.WeakSet()
        self._open_lock = threading.Lock()
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        opened, lock = self._open, self._open_lock

        def tracked(base):
            class Tracked(base):
                def connect(self):
                    super().connect()
                    with lock:
                        opened.add(self)
            return Tracked

        class Pool(HTTPConnectionPool):
            ConnectionCls = tracked(HTTPConnection)

        class TlsPool(HTTPSConnectionPool):
            ConnectionCls = tracked(HTTPSConnection)

        self.poolmanager.pool_classes_by_scheme = {"http": Pool, "https": TlsPool}

    def abort(self) -> int:
        """Shut down every open connection's socket; how many were cut."""
        with self._open_lock:
            conns = list(self._open)
        cut = 0
        for conn in conns:
            sock = getattr(conn, "sock", None)
            if sock is None:
                continue
            try:
                sock.shutdown(socket.SHUT_RDWR)
                cut += 1
            except OSError:  # already closed
                pass
        return cut


class HttpClient:
    """One server's session. ``request`` returns the parsed JSON (or None) or raises a BackendError."""

    def __init__(self, server: ServerConfig, headers: Optional[Dict[str, str]] = None,
                 secrets: Iterable[str] = ()):
        self.base_url = server.url.rstrip("/")
        self.timeout = (float(server.connect_timeout), float(server.read_timeout))
        self.session = _SameOriginSession(self.base_url)
        self._adapter = _AbortableAdapter()
        self.session.mount("http://", self._adapter)
        self.session.mount("https://", self._adapter)
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.headers["Accept"] = "application/json"
        if headers:
            self.session.headers.update(headers)
        # A CA bundle implies verification; verify_tls=False is the user's explicit choice.
        self.verify = server.ca_bundle or bool(server.verify_tls)
        # The environment's proxies (with no_proxy) and CA bundle, read once here as requests
        # reads them on every request (that read walks the whole environment each time: a
        # fifth of a request's CPU). trust_env off: nothing else of the environment (.netrc)
        # adds to what is sent.
        self.proxies = requests.utils.get_environ_proxies(self.base_url)
        if self.verify is True:
            self.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self.session.trust_env = False
        self.session.verify = self.verify
        for s in (server.token, *secrets):
            register_secret(s)

    def url(self, path: str) -> str:
        return self.base_url + path

    def request(self, method: str, path: str, *, params=None, json: Any = None,
                headers: Optional[Dict[str, str]] = None, expect_json: bool = True) -> Any:
        what = f"{method} {redact(self.base_url + path)}"
        try:
            resp = self.session.request(method, self.url(path), params=params, json=json, headers=headers,
                                        timeout=self.timeout, verify=self.verify, proxies=self.proxies)
        except (requests.Timeout, requests.exceptions.SSLError, requests.ConnectionError,
                requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as e:
            # Said in words (wording.py); TLS problems don't heal by retrying quickly, but the
            # server may be mid-renewal: the worker's backoff handles it.
            raise TransientError(in_words(e, self.base_url, self.timeout[1]), not_sent=_never_connected(e)) from None
        except requests.RequestException as e:
            raise PermanentError(f"{what}: {redact(_short(e))}") from None
        if resp.history and resp.status_code < 400 and _origin(resp.url) != _origin(self.base_url):
            # Another host answered (captive portal, moved server): it got no token and saved
            # nothing for us, so its "OK" must not close the change as applied.
            p = urlsplit(resp.url)
            raise TransientError(f"{what}: redirected to another address ({p.scheme}://{p.netloc}); nothing was "
                                 "saved — if the server moved, put its new address in the settings", answered=True)
        return self._result(what, resp, expect_json)

    def _result(self, what: str, resp: requests.Response, expect_json: bool) -> Any:
        code = resp.status_code
        if code == 429 or code >= 500:
            # A gateway's 502/504 says nothing of whether the server behind it applied the write.
            raise TransientError(f"{what}: HTTP {code} {resp.reason or ''}".rstrip() + _detail(resp),
                                 retry_after=parse_retry_after(resp.headers.get("Retry-After")),
                                 answered=code not in (502, 504))
        if code in (401, 403):
            raise AuthError(f"{what}: HTTP {code}: the server refused the credentials; sign in again"
                            + _detail(resp))
        if code == 404:
            raise NotFoundError(f"{what}: HTTP 404 {resp.reason or ''}".rstrip() + _detail(resp))
        if code >= 300:
            raise PermanentError(f"{what}: HTTP {code} {resp.reason or ''}".rstrip() + _detail(resp))
        if not expect_json or code == 204 or not resp.content:
            if resp.content and "json" in resp.headers.get("Content-Type", "").lower():
                try:
                    resp.json()
                except ValueError:
                    # A cut or garbled answer to a write: don't take its 200 as "saved".
                    raise TransientError(f"{what}: the answer is not valid JSON") from None
            return None
        try:
            return resp.json()
        except ValueError:
            # A 200 that isn't JSON: a proxy or captive portal in the way, or a cut body.
            raise TransientError(f"{what}: " + (WEB_PAGE if _web_page(resp) else "the answer is not valid JSON")) \
                from None

    def abort(self) -> None:
        """Cut the requests in flight (from another thread): each fails at once as a lost connection."""
        self._adapter.abort()

    def close(self) -> None:
        self.session.close()


def _never_connected(exc: BaseException) -> bool:
    """The request failed before a connection existed (refused, unreachable, unknown name, or
    the connect timed out): not one byte of it reached the server, so a write cannot land."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if not isinstance(exc, requests.ConnectionError) or isinstance(exc, requests.exceptions.SSLError):
        return False
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))


WEB_PAGE = "a web page answered, not the server's API (is this the server's address?)"


def _web_page(resp: requests.Response) -> bool:
    if "html" in resp.headers.get("Content-Type", "").lower():
        return True
    return resp.content[:200].lstrip().lower().startswith((b"<!doctype html", b"<html"))


def _short(text: Any) -> str:
    s = str(text)
    return s if len(s) <= 300 else s[:300] + "…"


def _detail(resp: requests.Response) -> str:
    """The server's own message, when it sent one (kept for the failed row); never a web page's text."""
    if _web_page(resp):
        return ": " + WEB_PAGE
    try:
        body = resp.text.strip()
    except Exception:
        return ""
    if not body:
        return ""
    try:
        data = resp.json()
        if isinstance(data, dict):
            for k in ("message", "Message", "error", "Error", "title", "detail"):
                if isinstance(data.get(k), str):
                    body = data[k]
                    break
    except ValueError:
        pass
    return ": " + redact(_short(" ".join(body.split())))
