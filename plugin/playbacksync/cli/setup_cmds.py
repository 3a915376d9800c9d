"""Setup commands: the settings dialog and `login` (with servers found on the local network)."""
from __future__ import annotations

import getpass
import sys
from typing import Optional

from .common import EXIT_USAGE, config_file


def cmd_settings(args) -> int:
    from ..settings.dialog import run_dialog

    return run_dialog(config_file(args))


def read_secret(prompt: str) -> str:
    """A password or token: without echo on a terminal; without one, one line from stdin
    (so `echo "$PW" | playback-sync login …` works and Python's GetPassWarning never shows)."""
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    line = sys.stdin.readline()
    if not line:
        raise EOFError("no password on stdin")
    return line.rstrip("\r\n")


def _known_url(path: str, server_type: str, server_id: Optional[str]) -> bool:
    """The config already has an address for the server `login` will pick (nothing to discover)."""
    import os

    from ..settings import load_config

    try:
        config = load_config(path) if os.path.exists(path) else None
    except Exception:
        return False
    if config is None:
        return False
    same = [s for s in config.servers if s.type == server_type and (server_id is None or s.id == server_id)]
    return bool(same) and all(s.url for s in same)


def offer_discovered(server_type: str, ask=input, say=print) -> Optional[str]:
    """Look for servers of this type on the network; the chosen URL, or None to type one."""
    from ..settings.discovery import discover

    say(f"Looking for {server_type.capitalize()} servers on the local network…")
    try:
        found = discover((server_type,))
    except (OSError, ValueError) as exc:
        say(f"could not look for servers ({exc}); type the address instead")
        return None
    if not found:
        say("None answered; type the server's address.")
        return None
    for n, f in enumerate(found, 1):
        say(f"  {n}) {f.name}  {f.url}")
    for _ in range(3):
        choice = ask("Use which one? [1], or n to type an address: ").strip().lower()
        if not choice:
            return found[0].url
        if choice in ("n", "no"):
            return None
        if choice.isdigit() and 1 <= int(choice) <= len(found):
            return found[int(choice) - 1].url
        say(f"{choice!r} is not one of 1–{len(found)}.")
    return None


def cmd_login(args) -> int:
    from ..settings.login import run_login

    path = config_file(args)
    url = args.url
    try:
        if url is None and not args.no_discover and not _known_url(path, args.server_type, args.server_id):
            url = offer_discovered(args.server_type, ask=_ask)
    except EOFError:
        print("no answer on stdin; pass --url", file=sys.stderr)
        return EXIT_USAGE
    return run_login(args.server_type, path, url=url, username=args.username, server_id=args.server_id,
                     input=_ask, getpass=read_secret)


def _ask(prompt: str) -> str:
    """input() that also works when stdin is a pipe (the prompt still shows)."""
    if sys.stdin.isatty():
        return input(prompt)
    print(prompt, end="", flush=True)
    line = sys.stdin.readline()
    if not line:
        raise EOFError("no answer on stdin")
    return line.rstrip("\r\n")
