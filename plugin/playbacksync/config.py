"""The settings model shared by both hosts (plain data, no I/O).

Loading, validation and the settings dialogs live in ``playbacksync.settings``;
backends and the worker only ever see these objects.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

SERVER_TYPES = ("plex", "jellyfin", "emby")


@dataclass(frozen=True)
class PathMapping:
    """A local folder prefix and the same folder as the server sees it."""

    local: str
    remote: str


@dataclass(frozen=True)
class ServerConfig:
    """One configured server. ``id`` is the user's name for it and the queue's source_id."""

    id: str
    type: str  # one of SERVER_TYPES
    url: str
    token: str = field(default="", repr=False)  # never in a repr that might be logged
    user_id: str = ""  # Jellyfin/Emby user id; Plex: empty (the token names the user)
    username: str = ""
    enabled: bool = True
    verify_tls: bool = True
    ca_bundle: str = ""  # path to a CA bundle for self-signed servers
    device_id: str = ""  # stable client id sent to the server
    path_mappings: Tuple[PathMapping, ...] = ()
    connect_timeout: float = 5.0
    read_timeout: float = 15.0


@dataclass(frozen=True)
class SyncOptions:
    progress_interval: float = 10.0  # seconds between progress changes while playing
    watched_percent: float = 90.0  # past this share of the duration a file counts as watched
    notifications: str = "errors"  # all | errors | off
    retention_days: float = 7.0  # synced rows are pruned after this
    agent_drain_seconds: float = 5.0  # mpv's attached agent: how long it keeps sending after mpv quits


@dataclass(frozen=True)
class Config:
    servers: Tuple[ServerConfig, ...] = ()
    sync: SyncOptions = field(default_factory=SyncOptions)

    def server(self, server_id: str) -> Optional[ServerConfig]:
        return next((s for s in self.servers if s.id == server_id), None)

    def enabled_servers(self) -> List[ServerConfig]:
        return [s for s in self.servers if s.enabled]
