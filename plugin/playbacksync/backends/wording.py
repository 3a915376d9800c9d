"""Connection failures said in words a user can act on (one rule, used by every backend).

``in_words`` looks through an exception's chain (requests → urllib3 → the OS
error) for the cause and names it: refused, unknown name, untrusted
certificate, no route, reset, timeout. No library text like "Max retries
exceeded" or "[Errno 111]" reaches the user.
"""
from __future__ import annotations

import socket
import ssl
from typing import Iterator, Optional
from urllib.parse import urlsplit

from ..redact import redact


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen = set()
    todo = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        try:
            reason = getattr(e, "reason", None)  # urllib3's MaxRetryError; a property elsewhere
        except Exception:
            reason = None
        todo += [e.__cause__, e.__context__, reason if isinstance(reason, BaseException) else None]
        todo += [a for a in getattr(e, "args", ()) if isinstance(a, BaseException)]


def in_words(exc: BaseException, base_url: str, timeout: Optional[float] = None) -> str:
    """What went wrong reaching ``base_url``, for a person (the address redacted, no library text)."""
    base = redact(base_url.rstrip("/"))
    host = urlsplit(base_url).hostname or base
    names = {type(e).__name__ for e in _chain(exc)}
    for e in _chain(exc):
        if isinstance(e, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(e):
            return (f"TLS certificate of {base} not trusted: set ca_bundle to the file of the CA that signed it "
                    "(or verify_tls = false on a network you trust)")
        if isinstance(e, socket.gaierror) or "NameResolutionError" in names:
            return f"the name {host} does not resolve: check the server address"
        if isinstance(e, ConnectionRefusedError):
            return f"nothing answers at {base}: is the server running, and is the port right?"
    for e in _chain(exc):
        if isinstance(e, ssl.SSLError):
            return f"TLS handshake with {base} failed: is it an https server? ({type(e).__name__})"
        if isinstance(e, (socket.timeout, TimeoutError)) or "Timeout" in type(e).__name__:
            wait = f" within {timeout:g} s" if timeout else ""
            return f"{base} did not answer{wait} (timed out)"
        if isinstance(e, ConnectionResetError) or "RemoteDisconnected" in names:
            return f"{base} closed the connection before answering"
        if isinstance(e, OSError) and e.errno in (101, 113):  # ENETUNREACH, EHOSTUNREACH
            return f"{host} cannot be reached from here (no route to it)"
    return f"cannot connect to {base} ({type(exc).__name__})"


def not_the_server(base_url: str, product: str) -> str:
    """A web page answered where the server's API should be."""
    return (f"{redact(base_url.rstrip('/'))} answered with a web page, not the {product} API: "
            f"is this the address of a {product} server?")
