"""The HTTP layer every backend shares: one keep-alive session per server,
explicit timeouts, verified TLS, failures mapped to the backend error kinds,
tokens kept out of every message and away from every other host.
"""
from __future__ import annotations

import email.utils
import time
from typing import Any, Dict, Iterable, Optional
from urllib.parse import urlsplit

import requests
import urllib3

from .. import __version__
from ..config import ServerConfig
from ..redact import redact, register_secret  # noqa: F401  (re-exported: older imports)
from .base import AuthError, PermanentError, TransientError
from .wording import in_words

USER_AGENT = f"PlaybackSync/{__version__} (+python-requests/{requests.__version__})"

# Headers that carry a credential; none of them may follow a redirect to another origin.
TOKEN_HEADERS = ("Authorization", "X-Emby-Authorization", "X-Emby-Token", "X-MediaBrowser-Token",
                 "X-Plex-Token", "Proxy-Authorization")



class NotFoundError(PermanentError):
    """404: the item (or route) is not on the server."""


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


class HttpClient:
    """One server's session. ``request`` returns the parsed JSON (or None) or raises a BackendError."""

    def __init__(self, server: ServerConfig, headers: Optional[Dict[str, str]] = None,
                 secrets: Iterable[str] = ()):
        self.base_url = server.url.rstrip("/")
        self.timeout = (float(server.connect_timeout), float(server.read_timeout))
        self.session = _SameOriginSession(self.base_url)
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.headers["Accept"] = "application/json"
        if headers:
            self.session.headers.update(headers)
        # A CA bundle implies verification; verify_tls=False is the user's explicit choice.
        # Passed on every request too: requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE
        # override a Session's own verify setting.
        self.verify = server.ca_bundle or bool(server.verify_tls)
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
                                        timeout=self.timeout, verify=self.verify)
        except (requests.Timeout, requests.exceptions.SSLError, requests.ConnectionError,
                requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as e:
            # Said in words (wording.py); TLS problems don't heal by retrying quickly, but the
            # server may be mid-renewal: the worker's backoff handles it.
            err = TransientError(in_words(e, self.base_url, self.timeout[1]))
            err.unsent = _never_sent(e)  # refused or not connected in time: the server got nothing
            raise err from None
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

    def close(self) -> None:
        self.session.close()


def _never_sent(e: Exception) -> bool:
    """The connection was never made (refused, unreachable, connect timeout): no request left."""
    if isinstance(e, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(e.args[0], "reason", None) if isinstance(e, requests.ConnectionError) and e.args else None
    return isinstance(reason, urllib3.exceptions.ConnectTimeoutError)  # NewConnectionError included


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
