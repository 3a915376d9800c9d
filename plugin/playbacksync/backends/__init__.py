"""Server clients. ``make_backend(server_config)`` picks the class by type.

Each backend module is imported only when a server of its type is configured.
"""
from __future__ import annotations

from ..config import ServerConfig
from .base import AuthError, Backend, BackendError, PermanentError, TransientError


def make_backend(server: ServerConfig) -> Backend:
    """The backend for ``server.type``; ValueError names an unknown type."""
    kind = (server.type or "").lower()
    if kind == "jellyfin":
        from .jellyfin import JellyfinBackend
        return JellyfinBackend(server)
    if kind == "emby":
        from .emby import EmbyBackend
        return EmbyBackend(server)
    if kind == "plex":
        from .plex import PlexBackend
        return PlexBackend(server)
    raise ValueError(f"server {server.id!r}: unknown type {server.type!r} (expected plex, jellyfin or emby)")


__all__ = ["make_backend", "Backend", "BackendError", "TransientError", "AuthError", "PermanentError"]
