"""The one list of settings both hosts read.

mpv reads a TOML file (``config_file``) validated against these fields; Kodi
renders them as ``resources/settings.xml`` (``kodi_settings`` generates it and
``strings.po`` from this module) and turns its flat values back into a
``Config`` with ``config_from_flat``.

Every setting exists in both hosts, except where a reason is written down
(``Field.kodi_reason`` / ``Field.file_reason``, repeated in the README):

* Several servers of one type: file only. Kodi's settings dialog cannot edit
  lists, so Kodi has exactly one server per type, and its id is the type
  name (``plex``, ``jellyfin``, ``emby``). For the same reason a server's
  ``id`` and ``type`` are not Kodi settings: the category gives both.
* ``device_id``: file only. Kodi derives a stable client id itself from the
  server id; mpv users may pin one to keep the id when moving machines.
* Path mappings: in the file an array of ``{local, remote}`` tables; in Kodi
  one text setting ``local=>remote | local2=>remote2`` (no list editor).
* ``token``/``user_id``: both hosts, but Kodi never shows the token (hidden
  setting written by the sign-in action); the file holds it (mode 0600) and
  every display masks it (``mask_token``).
* Action buttons (sign in, test connection, retry failed, queue status): Kodi
  only as settings; on mpv they are buttons of ``playback-sync settings`` and
  the commands ``login``, ``status`` and ``retry``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Tuple

from ..config import SERVER_TYPES

NOTIFICATION_CHOICES = ("all", "errors", "off")
TYPE_LABELS = {"plex": "Plex", "jellyfin": "Jellyfin", "emby": "Emby"}


@dataclass(frozen=True)
class Field:
    key: str  # TOML key and attribute of ServerConfig / SyncOptions
    kind: str  # id | type | url | str | secret | bool | float | int | choice | path | mappings
    label: str
    help: str
    label_id: int  # Kodi strings.po id; help uses label_id + 1
    default: Any = None
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    step: Optional[float] = None
    choices: Tuple[str, ...] = ()
    types: Tuple[str, ...] = SERVER_TYPES  # server types this field applies to
    kodi_reason: str = ""  # non-empty: not a Kodi setting, and why
    file_reason: str = ""  # non-empty: not in the config file, and why
    kodi_level: int = 0  # 0 basic .. 3 expert
    kodi_hidden: bool = False
    kodi_default: Any = None  # when Kodi's default differs (e.g. a server starts off)

    @property
    def help_id(self) -> int:
        return self.label_id + 1

    @property
    def in_kodi(self) -> bool:
        return not self.kodi_reason

    @property
    def in_file(self) -> bool:
        return not self.file_reason


SERVER_FIELDS: Tuple[Field, ...] = (
    Field("id", "id", "Name", "Your name for this server; the queue files changes under it.", 30100,
          kodi_reason="Kodi has one server per type, named after the type."),
    Field("type", "type", "Server type", "plex, jellyfin or emby.", 30102, choices=SERVER_TYPES,
          kodi_reason="Kodi's category (Plex, Jellyfin, Emby) is the type."),
    Field("enabled", "bool", "Sync with this server", "Send progress and watched state to this server.",
          30104, default=True, kodi_default=False),
    Field("url", "url", "Server URL", "Address of the server, e.g. https://media.example.org:8920", 30106,
          default=""),
    Field("username", "str", "User name", "The account to sign in as.", 30108, default=""),
    Field("token", "secret", "Access token", "Set by signing in; never shown.", 30110, default="",
          kodi_hidden=True, kodi_level=3),
    Field("user_id", "str", "User id", "Set by signing in (Jellyfin and Emby).", 30112, default="",
          types=("jellyfin", "emby"), kodi_level=2),
    Field("path_mappings", "mappings", "Path mappings",
          "Where your files are on this machine and where the server sees them: local=>remote | local2=>remote2",
          30114, default=()),
    Field("verify_tls", "bool", "Verify the server's certificate",
          "Turn off only for a server you trust on your own network.", 30116, default=True, kodi_level=2),
    Field("ca_bundle", "path", "CA certificate file",
          "A PEM file with the certificate authority of a self-signed server.", 30118, default="", kodi_level=2),
    Field("device_id", "str", "Device id", "Stable client id sent to the server (empty: derived).", 30120,
          default="", kodi_reason="Kodi derives a stable client id itself; nothing for the viewer to set."),
    Field("connect_timeout", "float", "Connect timeout (s)", "Seconds to wait for a connection.", 30122,
          default=5.0, minimum=0.5, maximum=120.0, step=0.5, kodi_level=3),
    Field("read_timeout", "float", "Read timeout (s)", "Seconds to wait for an answer.", 30124,
          default=15.0, minimum=1.0, maximum=300.0, step=1.0, kodi_level=3),
)

SYNC_FIELDS: Tuple[Field, ...] = (
    Field("progress_interval", "int", "Progress update interval (s)",
          "While playing, send the position at most this often.", 30200, default=10, minimum=2,
          maximum=600, step=1),
    Field("watched_percent", "int", "Watched after (%)",
          "Past this share of the duration a video counts as watched.", 30202, default=90, minimum=50,
          maximum=100, step=1),
    Field("notifications", "choice", "Notifications", "Show every sync, only errors, or nothing.", 30204,
          default="errors", choices=NOTIFICATION_CHOICES),
    Field("retention_days", "int", "Keep synced history (days)",
          "Synced changes are kept this long for the status view, then removed.", 30206, default=7,
          minimum=1, maximum=365, step=1, kodi_level=2),
    Field("agent_drain_seconds", "float", "Send time after mpv quits (s)",
          "When an mpv with the installed script quits, its agent keeps sending this long; "
          "what is left stays queued.", 30264, default=5.0, minimum=0.0, maximum=60.0, step=1.0,
          kodi_reason="Only for mpv's attached agent; Kodi's service keeps running after playback."),
)

CHOICE_LABELS = {"all": ("All changes", 30210), "errors": ("Errors only", 30211), "off": ("Off", 30212)}


@dataclass(frozen=True)
class Action:
    key: str  # Kodi setting id suffix
    label: str
    help: str
    label_id: int
    per_type: bool
    script_arg: str
    file_reason: str = "On mpv this is a button of `playback-sync settings` or a command."

    @property
    def help_id(self) -> int:
        return self.label_id + 1


ACTIONS: Tuple[Action, ...] = (
    Action("signin", "Sign in", "Sign in and store a token (Plex: a code to enter at plex.tv/link).", 30300,
           True, "signin"),
    Action("test", "Test connection", "Contact the server and show its name and version.", 30302, True, "test"),
    Action("retry", "Retry failed changes", "Queue changes that failed again.", 30304, False, "retry"),
    Action("status", "Show queue status", "How many changes are pending, failed or synced per server.",
           30306, False, "status"),
)

ADDON_ID = "service.playbacksync"

# Kodi section/category/group labels.
CATEGORY_LABELS = {"plex": 30000, "jellyfin": 30001, "emby": 30002, "sync": 30003}
GROUP_LABELS = {"server": ("Server", 30010), "account": ("Account", 30011), "paths": ("Files", 30012),
                "security": ("Connection", 30013), "sync": ("Syncing", 30014), "actions": ("Actions", 30015)}
FIELD_GROUPS = {"enabled": "server", "url": "server", "username": "account", "token": "account",
                "user_id": "account", "path_mappings": "paths", "verify_tls": "security",
                "ca_bundle": "security", "connect_timeout": "security", "read_timeout": "security"}


def action_command(action: Action, server_type: Optional[str] = None) -> str:
    """The RunScript string the Kodi host's script entry point understands."""
    args = [ADDON_ID, action.script_arg] + ([server_type] if server_type else [])
    return "RunScript(" + ",".join(args) + ")"


def server_field(key: str) -> Field:
    return next(f for f in SERVER_FIELDS if f.key == key)


def sync_field(key: str) -> Field:
    return next(f for f in SYNC_FIELDS if f.key == key)


def kodi_setting_ids() -> dict:
    """Every Kodi setting id (not actions) -> its Field, in display order."""
    out = {}
    for t in SERVER_TYPES:
        for f in SERVER_FIELDS:
            if f.in_kodi and t in f.types:
                out[f"{t}_{f.key}"] = f
    for f in SYNC_FIELDS:
        if f.in_kodi:
            out[f.key] = f
    return out


def mask_token(token: str) -> str:
    """A token as it may be shown: its first 4 characters and an ellipsis, never more."""
    if not token:
        return "(none)"
    if len(token) < 12:
        return "…"
    return token[:4] + "…"
