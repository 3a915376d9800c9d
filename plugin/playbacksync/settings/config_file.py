"""The mpv side's config file: TOML, validated against ``schema``.

Problems are reported all at once, each naming the file, the key and the fix.
Saving is atomic (temp file in the same folder, fsync, rename) and private
(file 0600, folder 0700 when we create it or it is the default folder).
"""
from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass, replace
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import urlsplit, urlunsplit

from ..config import SERVER_TYPES, Config, PathMapping, ServerConfig, SyncOptions
from ..paths import config_dir, write_private
from .schema import SERVER_FIELDS, SYNC_FIELDS, Field

log = logging.getLogger(__name__)

ENV_CONFIG = "PLAYBACK_SYNC_CONFIG"
FILE_NAME = "config.toml"
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Problem:
    key: str
    message: str
    fix: str
    server: str = ""  # the server's name (its id) when the problem is in one server's settings

    def __str__(self):
        return f"{self.key}: {self.message} — {self.fix}" if self.key else f"{self.message} — {self.fix}"

    def said(self) -> str:
        """As a dialog says it: the server by its name ('server "home", url: …'), not servers[2]."""
        if not self.server:
            return str(self)
        field = self.key.split("].", 1)[1] if "]." in self.key else ""
        return f'server "{self.server}"' + (f", {field}" if field else "") + f": {self.message} — {self.fix}"


class ConfigError(Exception):
    """Unusable settings. ``file``, ``key`` (of the first problem) and ``problems`` say where and how to fix."""

    def __init__(self, file: str, problems: List[Problem]):
        self.file = file
        self.problems = list(problems)
        self.key = self.problems[0].key if self.problems else ""
        self.fix = self.problems[0].fix if self.problems else ""
        if len(self.problems) == 1:
            text = f"{file}: {self.problems[0]}"
        else:
            text = f"{file}: {len(self.problems)} problems:\n" + "\n".join(f"  {p}" for p in self.problems)
        super().__init__(text)


def default_config_path() -> str:
    """``$PLAYBACK_SYNC_CONFIG`` if set, else config.toml in the user's config folder."""
    env = os.environ.get(ENV_CONFIG)
    if env:
        return os.path.expanduser(env)
    return os.path.join(config_dir(), FILE_NAME)


# -- validation ------------------------------------------------------------------

def _kind_name(v: Any) -> str:
    if isinstance(v, bool):
        return "true/false"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "text"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "a table"
    return type(v).__name__


def _unknown(key: str, allowed, where: str) -> Problem:
    import difflib  # only for a mistyped key: not on every load

    near = difflib.get_close_matches(key, list(allowed), n=1)
    hint = f'did you mean "{near[0]}"?' if near else "known keys: " + ", ".join(allowed)
    return Problem(f"{where}{key}", "unknown setting", f"remove it or fix its name ({hint})")


def _shown(value: str) -> str:
    """A URL as a message may quote it: user info, query and fragment (where passwords and
    tokens go) left out."""
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return "(the URL)"
    hidden = "?…" if parts.query or parts.fragment else ""
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", "")) + hidden


def check_url(value: str) -> Optional[Tuple[str, str]]:
    """None if ``value`` is a usable server URL, else (message, fix). Messages never quote
    the URL's user info or query."""
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return ("the URL cannot be read", "write it as https://host:port (or http://host:port)")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return (f"{_shown(value)!r} is not an http(s) URL", "write it as https://host:port (or http://host:port)")
    if parts.username or parts.password:
        return ("the URL holds a user name or password",
                "remove it from the URL; sign in instead (`playback-sync login`) to store a token")
    try:
        parts.port
    except ValueError:
        return (f"{_shown(value)!r} has an invalid port", "use a port number from 1 to 65535, e.g. https://host:8920")
    if parts.query or parts.fragment:
        return (f"{_shown(value)!r} has a query or fragment", "use only scheme, host, port and path")
    return None


def check_number(f: Field, value: float) -> Optional[Tuple[str, str]]:
    """(what is wrong, how to fix it) for a number setting's value, or None if it is usable."""
    if not math.isfinite(value):  # TOML has nan and inf; none of our numbers means anything with them
        return f"{value} is not a finite number", f"write an ordinary number, e.g. {f.key} = {f.default}"
    if (f.minimum is not None and value < f.minimum) or (f.maximum is not None and value > f.maximum):
        return f"{value:g} is out of range", f"use a value from {f.minimum:g} to {f.maximum:g}"
    return None


def _value(f: Field, raw: Any, where: str, problems: List[Problem]) -> Any:
    key = f"{where}{f.key}"
    if f.kind in ("str", "secret", "path", "id", "type", "url", "choice"):
        if not isinstance(raw, str):
            problems.append(Problem(key, f"is {_kind_name(raw)}, not text", f'put it in quotes, e.g. {f.key} = "…"'))
            return None
        if f.kind == "path" and raw:
            path = os.path.expanduser(raw)
            if not os.path.isfile(path):
                problems.append(Problem(key, f"file {raw!r} not found",
                                        "give the path of a PEM certificate file, or remove the setting"))
            return path
        if f.kind == "choice" and raw not in f.choices:
            problems.append(Problem(key, f"{raw!r} is not one of {', '.join(f.choices)}",
                                    f'write one of: {", ".join(repr(c) for c in f.choices)}'))
        return raw
    if f.kind == "bool":
        if not isinstance(raw, bool):
            problems.append(Problem(key, f"is {_kind_name(raw)}, not true/false",
                                    f"write {f.key} = true or {f.key} = false (no quotes)"))
        return raw
    if f.kind in ("int", "float"):
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            problems.append(Problem(key, f"is {_kind_name(raw)}, not a number",
                                    f"write a number without quotes, e.g. {f.key} = {f.default}"))
            return None
        bad = check_number(f, raw)
        if bad:
            problems.append(Problem(key, *bad))
            return None if not math.isfinite(raw) else float(raw)
        return float(raw)
    raise AssertionError(f.kind)


_MAPPING_KEYS = ("local", "remote", "ignore_case")


def _mappings(raw: Any, where: str, problems: List[Problem]) -> Tuple[PathMapping, ...]:
    key = f"{where}path_mappings"
    fix = 'write path_mappings = [{ local = "/mnt/media", remote = "/data/media" }]'
    if not isinstance(raw, list):
        problems.append(Problem(key, f"is {_kind_name(raw)}, not a list", fix))
        return ()
    out = []
    for i, m in enumerate(raw, 1):
        mk = f"{key}[{i}]"
        if not isinstance(m, dict):
            problems.append(Problem(mk, f"is {_kind_name(m)}, not a {{ local, remote }} table", fix))
            continue
        for extra in sorted(set(m) - set(_MAPPING_KEYS)):
            problems.append(_unknown(extra, _MAPPING_KEYS, mk + "."))
        local, remote = m.get("local"), m.get("remote")
        ignore_case = m.get("ignore_case", False)
        bad = False
        if not isinstance(ignore_case, bool):
            problems.append(Problem(f"{mk}.ignore_case", f"is {_kind_name(ignore_case)}, not true or false",
                                    "write ignore_case = true when the server's side compares names without case"))
            bad = True
        for name, v in (("local", local), ("remote", remote)):
            if not isinstance(v, str) or not v.strip():
                problems.append(Problem(f"{mk}.{name}", "missing or empty",
                                        f"give the folder as text, e.g. {name} = \"/mnt/media\""))
                bad = True
        if not bad:
            out.append(PathMapping(local=local, remote=remote, ignore_case=ignore_case))
    return tuple(out)


def _server(raw: Any, index: int, problems: List[Problem]) -> Optional[ServerConfig]:
    start = len(problems)
    server = _server_checked(raw, index, problems)
    name = raw.get("id") if isinstance(raw, dict) else None
    if isinstance(name, str) and name.strip():  # its problems name it too
        problems[start:] = [replace(p, server=name.strip()) for p in problems[start:]]
    return server


def _server_checked(raw: Any, index: int, problems: List[Problem]) -> Optional[ServerConfig]:
    where = f"servers[{index}]."
    if not isinstance(raw, dict):
        problems.append(Problem(f"servers[{index}]", f"is {_kind_name(raw)}, not a table",
                                "write each server as a [[servers]] table"))
        return None
    allowed = [f.key for f in SERVER_FIELDS if f.in_file]
    for key in raw:
        if key not in allowed:
            problems.append(_unknown(key, allowed, where))
    before = len(problems)
    values: Dict[str, Any] = {}
    for f in SERVER_FIELDS:
        if f.key not in raw:
            continue
        if f.kind == "mappings":
            values[f.key] = _mappings(raw[f.key], where, problems)
        else:
            values[f.key] = _value(f, raw[f.key], where, problems)
    for req, fix in (("id", 'name it, e.g. id = "home"'), ("type", 'write type = "jellyfin" (or "plex", "emby")'),
                     ("url", 'write url = "https://host:port"')):
        if req not in raw:
            problems.append(Problem(f"{where}{req}", "missing", fix))
    sid, stype, url = values.get("id"), values.get("type"), values.get("url")
    if isinstance(sid, str) and not _ID_RE.match(sid):
        problems.append(Problem(f"{where}id", f"{sid!r} is not a usable name",
                                "use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"))
    if isinstance(stype, str) and stype not in SERVER_TYPES:
        problems.append(Problem(f"{where}type", f"{stype!r} is not a server type",
                                'write "plex", "jellyfin" or "emby"'))
    if isinstance(url, str):
        bad = check_url(url)
        if bad:
            problems.append(Problem(f"{where}url", *bad))
        else:
            values["url"] = url.strip().rstrip("/")
    if stype == "plex" and values.get("user_id"):
        problems.append(Problem(f"{where}user_id", "Plex servers have no user id (the token names the user)",
                                "remove user_id from this server"))
    if len(problems) > before:
        return None
    return ServerConfig(**values)


def config_from_dict(data: Dict[str, Any], file: str = "<settings>") -> Config:
    """Validate parsed settings (as TOML gives them) into a Config, or raise ConfigError."""
    problems: List[Problem] = []
    for key in data:
        if key not in ("servers", "sync"):
            problems.append(_unknown(key, ("servers", "sync"), ""))
    servers: List[ServerConfig] = []
    raw_servers = data.get("servers", [])
    if not isinstance(raw_servers, list):
        problems.append(Problem("servers", f"is {_kind_name(raw_servers)}, not a list of tables",
                                "write each server as a [[servers]] table"))
        raw_servers = []
    for i, raw in enumerate(raw_servers, 1):
        s = _server(raw, i, problems)
        if s is not None:
            servers.append(s)
    seen: Dict[str, int] = {}
    for i, raw in enumerate(raw_servers, 1):
        sid = raw.get("id") if isinstance(raw, dict) else None
        if isinstance(sid, str):
            if sid in seen:
                problems.append(Problem(f"servers[{i}].id", f"{sid!r} is already the id of servers[{seen[sid]}]",
                                        "give each server its own id", server=sid))
            seen.setdefault(sid, i)
    sync_values: Dict[str, Any] = {}
    raw_sync = data.get("sync", {})
    if not isinstance(raw_sync, dict):
        problems.append(Problem("sync", f"is {_kind_name(raw_sync)}, not a table", "write the options under [sync]"))
        raw_sync = {}
    allowed = [f.key for f in SYNC_FIELDS]
    for key in raw_sync:
        if key not in allowed:
            problems.append(_unknown(key, allowed, "sync."))
    for f in SYNC_FIELDS:
        if f.key in raw_sync:
            v = _value(f, raw_sync[f.key], "sync.", problems)
            if v is not None:
                sync_values[f.key] = v
    if problems:
        raise ConfigError(file, problems)
    return Config(servers=tuple(servers), sync=SyncOptions(**sync_values))


def config_to_dict(config: Config) -> Dict[str, Any]:
    """The TOML structure for ``config``: every server's id, type, url and enabled, other keys when set."""
    servers = []
    for s in config.servers:
        d: Dict[str, Any] = {}
        for f in SERVER_FIELDS:
            v = getattr(s, f.key)
            if f.key not in ("id", "type", "url", "enabled") and v == f.default:
                continue
            if f.kind == "mappings":
                v = [{"local": m.local, "remote": m.remote, **({"ignore_case": True} if m.ignore_case else {})}
                     for m in v]
            d[f.key] = v
        servers.append(d)
    sync = {f.key: _plain(getattr(config.sync, f.key)) for f in SYNC_FIELDS}
    return {"sync": sync, "servers": servers}


def _plain(v: Any) -> Any:
    return int(v) if isinstance(v, float) and v.is_integer() else v


# -- files -------------------------------------------------------------------------

def _register_tokens(config: Config) -> None:
    from ..redact import register_secret

    for s in config.servers:
        register_secret(s.token)


def load_config(path: str) -> Config:
    """Read and validate the TOML file at ``path``; ConfigError names the file, key and fix."""
    import tomllib  # Python 3.11+: the config file is mpv's side; Kodi (from 3.8) never reads TOML

    path = os.path.expanduser(str(path))
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(path, [Problem("", "file not found",
                                         "create it with `playback-sync settings` or `playback-sync login`, "
                                         "or copy the example from the README")]) from None
    except IsADirectoryError:
        raise ConfigError(path, [Problem("", "is a folder, not a file", "give the path of the config.toml file")]) from None
    except PermissionError:
        raise ConfigError(path, [Problem("", "cannot be read (permission denied)",
                                         f"make it readable by you: chmod 600 {path}")]) from None
    except UnicodeDecodeError:
        raise ConfigError(path, [Problem("", "is not UTF-8 text", "save the file as UTF-8")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [Problem("", f"not valid TOML: {exc}",
                                         "fix the syntax there (text values need \"quotes\", "
                                         "true/false and numbers none)")]) from None
    except RecursionError:  # tomllib recurses once per level of nested arrays or inline tables
        raise ConfigError(path, [Problem("", "nests arrays or tables too deeply to be read",
                                         "settings are at most a few levels deep: remove the deeply "
                                         "nested value (e.g. [[[[…]]]])")]) from None
    config = config_from_dict(data, path)
    _register_tokens(config)
    if any(s.token for s in config.servers):
        _tighten(path)
    return config


def _tighten(path: str) -> None:
    """A file holding tokens must be private: make it 0600 if others can read it."""
    try:
        mode = os.stat(path).st_mode & 0o777
        if mode & 0o077:
            os.chmod(path, 0o600)
            log.warning("%s was readable by others (mode %o); made it 0600", path, mode)
    except OSError as exc:
        log.warning("could not make %s private: %s", path, exc)


def save_config(config: Config, path: str) -> None:
    """Write ``config`` to ``path`` atomically, mode 0600 (comments in an existing file are not kept)."""
    path = os.path.abspath(os.path.expanduser(str(path)))
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        os.makedirs(folder, mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
    elif folder == os.path.abspath(config_dir()):
        os.chmod(folder, 0o700)
    import tomli_w  # only to save: not on every load

    text = ("# Playback Sync settings (written by playback-sync; the README explains every key).\n"
            "# This file holds access tokens: keep it private (mode 0600).\n\n"
            + tomli_w.dumps(config_to_dict(config)))
    write_private(path, text, prefix=".config-")
    _register_tokens(config)
