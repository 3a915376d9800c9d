"""Sign-in and connection tests shared by the terminal login and the Tk dialog.

Every message these return or raise is redacted: no token or password in it.
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable, Optional, Tuple

from ..config import ServerConfig

PLEX_TV = "https://plex.tv"


class ActionError(Exception):
    """A sign-in or test that did not work; the text is safe to show."""


def _safe(exc: BaseException) -> str:
    from ..redact import redact

    return redact(str(exc) or type(exc).__name__)


def sign_in_password(server: ServerConfig, username: str, password: str) -> ServerConfig:
    """Jellyfin/Emby: user name + password -> the server with token and user id set."""
    from ..backends.base import AuthError, BackendError

    if server.type == "jellyfin":
        from ..backends.jellyfin import sign_in
    elif server.type == "emby":
        from ..backends.emby import sign_in
    else:
        raise ActionError(f"{server.type} servers don't sign in with a password")
    try:
        token, user_id = sign_in(server.url, username, password, device_id=server.device_id,
                                 verify_tls=server.verify_tls, ca_bundle=server.ca_bundle,
                                 connect_timeout=server.connect_timeout, read_timeout=server.read_timeout)
    except AuthError as exc:
        raise ActionError(f"sign-in refused: wrong user name or password ({_safe(exc)})") from None
    except BackendError as exc:
        from ..backends.http import WEB_PAGE
        from ..backends.wording import not_the_server

        if WEB_PAGE in str(exc):  # another web server at that address: say so, don't dump its page
            raise ActionError(f"sign-in failed: {not_the_server(server.url, server.type.capitalize())}") from None
        raise ActionError(f"sign-in failed: {_safe(exc)}") from None
    return replace(server, username=username, token=token, user_id=user_id)


def plex_request_pin(server: ServerConfig, plex_tv_url: str = PLEX_TV) -> Tuple[int, str]:
    """Ask plex.tv for a PIN tied to this server's client id: (pin_id, code to enter at plex.tv/link)."""
    from ..backends.base import BackendError
    from ..backends.plex import client_identifier, request_pin

    try:
        return request_pin(client_identifier(server), base_url=plex_tv_url)
    except BackendError as exc:
        raise ActionError(f"plex.tv did not give a code: {_safe(exc)}") from None


def plex_poll_pin(server: ServerConfig, pin_id: int, plex_tv_url: str = PLEX_TV) -> Optional[str]:
    """The token once the viewer entered the code, else None; ActionError when the code expired."""
    from ..backends.base import BackendError
    from ..backends.plex import client_identifier, poll_pin

    try:
        return poll_pin(pin_id, client_identifier(server), base_url=plex_tv_url)
    except BackendError as exc:
        raise ActionError(f"the code expired or plex.tv refused it ({_safe(exc)}); ask for a new code") from None


def plex_wait_for_token(server: ServerConfig, pin_id: int, *, plex_tv_url: str = PLEX_TV, interval: float = 2.0,
                        timeout: float = 600.0, sleep: Callable[[float], None] = time.sleep,
                        cancelled: Callable[[], bool] = lambda: False) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not cancelled():
        token = plex_poll_pin(server, pin_id, plex_tv_url)
        if token:
            return token
        sleep(interval)
    raise ActionError("no sign-in at plex.tv/link in time; ask for a new code")


def test_connection(server: ServerConfig) -> str:
    """'Connected to NAME (PRODUCT VERSION)' or ActionError with the exact (redacted) error."""
    from ..backends import make_backend
    from ..backends.base import AuthError, BackendError

    backend = None
    try:
        backend = make_backend(server)
        info = backend.check()
    except AuthError as exc:
        raise ActionError(f"the server refused the token: {_safe(exc)} — sign in again") from None
    except (BackendError, ValueError) as exc:
        raise ActionError(_safe(exc)) from None
    finally:
        if backend is not None:
            backend.close()
    product = f"{info.product} " if getattr(info, "product", "") else ""
    return f"Connected to {info.name or server.url} ({product}{info.version or 'version unknown'})"


test_connection.__test__ = False  # not a pytest test despite its name
