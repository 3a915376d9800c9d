"""`playback-sync login jellyfin|emby|plex`: sign in from a terminal and save the token.

The password is read without echo and never stored; the token is saved to the
config file (0600) and shown only masked.
"""
from __future__ import annotations

import builtins
import getpass as _getpass
import os
import sys
from dataclasses import replace
from typing import Callable, Optional

from ..config import Config, ServerConfig
from . import actions
from .config_file import ConfigError, check_url, load_config, save_config
from .schema import TYPE_LABELS, mask_token

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _pick_server(config: Config, server_type: str, server_id: Optional[str], ask, say) -> ServerConfig:
    if server_id:
        existing = config.server(server_id)
        if existing and existing.type != server_type:
            raise ValueError(f"server {server_id!r} in the config is a {existing.type} server, not {server_type}; "
                             f"pick another --server-id")
        return existing or ServerConfig(id=server_id, type=server_type, url="")
    same = [s for s in config.servers if s.type == server_type]
    if len(same) == 1:
        return same[0]
    if len(same) > 1:
        ids = [s.id for s in same]
        say(f"Several {TYPE_LABELS[server_type]} servers are configured: {', '.join(ids)}")
        for _ in range(3):
            choice = ask(f"Which one? [{ids[0]}] ").strip() or ids[0]
            if choice in ids:
                return config.server(choice)
            say(f"{choice!r} is not one of them.")
        raise ValueError("no server chosen; pass --server-id")
    taken = {s.id for s in config.servers}
    sid, n = server_type, 2
    while sid in taken:
        sid, n = f"{server_type}-{n}", n + 1
    return ServerConfig(id=sid, type=server_type, url="")


def _ask_url(current: str, given: Optional[str], ask, say) -> str:
    if given:
        bad = check_url(given)
        if bad:
            raise ValueError(f"--url: {bad[0]} — {bad[1]}")
        return given.strip().rstrip("/")
    for _ in range(3):
        prompt = f"Server URL [{current}]: " if current else "Server URL (e.g. https://host:8920): "
        url = ask(prompt).strip() or current
        bad = check_url(url) if url else ("no URL given", "type the server's address")
        if not bad:
            return url.rstrip("/")
        say(f"{bad[0]} — {bad[1]}")
    raise ValueError("no usable server URL; pass --url https://host:port")


def run_login(server_type: str, config_path: str, *, url: Optional[str] = None, username: Optional[str] = None,
              server_id: Optional[str] = None, input: Callable[[str], str] = builtins.input,
              getpass: Callable[[str], str] = _getpass.getpass, out=None, plex_tv_url: Optional[str] = None,
              poll_interval: float = 2.0, timeout: float = 600.0) -> int:
    """Sign in to one server and save its token into the config at ``config_path``. Returns an exit code."""
    out = out or sys.stdout

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    if server_type not in TYPE_LABELS:
        say(f"unknown server type {server_type!r}: use jellyfin, emby or plex")
        return EXIT_USAGE
    plex_tv_url = plex_tv_url or os.environ.get("PLAYBACK_SYNC_PLEX_TV_URL") or actions.PLEX_TV
    try:
        config = load_config(config_path) if os.path.exists(config_path) else Config()
    except ConfigError as exc:
        say(f"playback-sync: {exc}")
        return EXIT_USAGE
    try:
        server = _pick_server(config, server_type, server_id, input, say)
        server = replace(server, url=_ask_url(server.url, url, input, say))
        if server_type in ("jellyfin", "emby"):
            user = username or input(f"User name [{server.username}]: " if server.username else "User name: ").strip() \
                or server.username
            if not user:
                say("no user name given")
                return EXIT_USAGE
            password = getpass(f"Password for {user}: ")
            say(f"Signing in to {server.url} as {user}…")
            before = server
            server = actions.sign_in_password(server, user, password)
            if before.user_id and before.user_id.replace("-", "").lower() != server.user_id.replace("-", "").lower():
                # Queued changes of this entry belong to its user; another user's token must not carry them.
                say(f"{user!r} is another user than the one server {before.id!r} is set up for "
                    f"({before.username or before.user_id}): each user's changes travel with that user's own "
                    f"token. Sign in as {before.username or 'that user'}, or add {user} as another server "
                    f"entry (--server-id {before.id}-{user}). Nothing saved.")
                return EXIT_FAILED
        else:
            choice = input("Sign in with a code at plex.tv/link [Enter], or type t to paste a token: ").strip().lower()
            if choice.startswith("t"):
                token = getpass("Plex token: ").strip()
                if not token:
                    say("no token given")
                    return EXIT_USAGE
            else:
                pin_id, code = actions.plex_request_pin(server, plex_tv_url)
                say(f"Open https://plex.tv/link and enter the code:  {code}")
                say("Waiting for you to sign in there (Ctrl+C to stop)…")
                token = actions.plex_wait_for_token(server, pin_id, plex_tv_url=plex_tv_url,
                                                    interval=poll_interval, timeout=timeout)
            from ..redact import register_secret

            register_secret(token)
            server = replace(server, token=token)
    except ValueError as exc:
        say(str(exc))
        return EXIT_USAGE
    except actions.ActionError as exc:
        say(str(exc))
        return EXIT_FAILED
    except (KeyboardInterrupt, EOFError):
        say("\nstopped; nothing saved")
        return 130
    others = tuple(s for s in config.servers if s.id != server.id)
    index = next((i for i, s in enumerate(config.servers) if s.id == server.id), len(others))
    servers = others[:index] + (server,) + others[index:]
    save_config(replace(config, servers=servers), config_path)
    say(f"Saved token {mask_token(server.token)} for server {server.id!r} ({server.type}) in {config_path}")
    try:
        say(actions.test_connection(server))
    except actions.ActionError as exc:
        say(f"Saved, but the connection test failed: {exc}")
        return EXIT_FAILED
    return EXIT_OK
