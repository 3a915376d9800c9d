"""The parser (every subcommand with a description, examples, exit codes and the config file's
place) and ``main``, which maps failures to exit codes."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, List, Optional

from .. import __version__
from . import media_cmds, queue_cmds, setup_cmds, sync_cmd
from .common import EXIT_STORAGE, EXIT_USAGE, UsageError

EXIT_CODES = """exit codes:
  0    done
  1    done, but something needs you: failed changes, a server offline or
       refusing the sign-in, nothing identified
  2    bad usage or settings: unknown option or server name, a bad config file
  3    the queue file cannot be used (disk full, read-only, damaged)
  130  interrupted (Ctrl+C)"""

# Extra commands registered by other modules (e.g. install/uninstall): fn(subparsers, epilog) -> None.
_EXTRA: List[Callable] = []


def register_commands(add: Callable) -> Callable:
    """Let another module add its subcommands: ``add(subparsers, epilog)`` is called by build_parser."""
    if add not in _EXTRA:
        _EXTRA.append(add)
    return add


def config_location() -> str:
    """Where the config file is looked for (without creating any folder)."""
    env = os.environ.get("PLAYBACK_SYNC_CONFIG")
    if env:
        return f"{env} (from $PLAYBACK_SYNC_CONFIG)"
    try:
        import platformdirs

        return os.path.join(platformdirs.user_config_dir("playback-sync", appauthor=False), "config.toml")
    except ImportError:  # pragma: no cover
        return "config.toml in the user config folder"


def epilog(examples: str = "") -> str:
    parts = []
    if examples:
        parts.append("examples:\n" + "\n".join("  " + line for line in examples.strip().splitlines()))
    parts.append(EXIT_CODES)
    parts.append(f"config file: {config_location()}\n  (change it with --config FILE or $PLAYBACK_SYNC_CONFIG)")
    return "\n\n".join(parts)


def _provider_id(text: str):
    kind, sep, value = text.partition("=")
    if not sep or not kind.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KIND=ID (e.g. imdb=tt0133093)")
    return kind.strip(), value.strip()


def _change_id(text: str) -> int:
    t = text.lstrip("#")
    if not t.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a change number (as `status` shows it, e.g. 11 or #11)")
    return int(t)


def build_parser() -> argparse.ArgumentParser:
    ep = epilog
    p = argparse.ArgumentParser(
        prog="playback-sync", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Keeps Plex, Jellyfin and Emby up to date with what you watch in mpv.",
        epilog=ep("playback-sync login jellyfin\nplayback-sync play ~/Videos/film.mkv\nplayback-sync status"))
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--config", metavar="FILE", help="config file (default: $PLAYBACK_SYNC_CONFIG or the user config folder)")
    p.add_argument("--data-dir", metavar="DIR", help="where the queue lives (default: $PLAYBACK_SYNC_DATA_DIR or the user data folder)")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug details, also to stderr")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def command(name, help_, description, examples, func, **kw):
        s = sub.add_parser(name, help=help_, description=description, epilog=ep(examples),
                           formatter_class=argparse.RawDescriptionHelpFormatter, **kw)
        s.set_defaults(func=func)
        return s

    s = command("play", "play files or URLs in mpv and sync what you watch",
                "Play TARGETs in mpv with your mpv config and record what you watch; it is sent to your servers "
                "in the background. Options mpv knows (e.g. --vo=null --fs) pass through.",
                "playback-sync play ~/Videos/film.mkv\nplayback-sync play --fs 'https://host/video.mp4'",
                media_cmds.cmd_play)
    s.add_argument("targets", nargs="+", metavar="TARGET", help="file, folder, playlist or URL")
    s.set_defaults(passthrough=True)

    s = command("status", "show each server's state and the changes waiting, by title",
                "Show each server (online, offline, paused, needs sign-in) and every change not yet on its "
                "server: waiting to be sent, waiting to identify, and failed, by title and in words.",
                "playback-sync status\nplayback-sync status --no-check\nplayback-sync status --json",
                queue_cmds.cmd_status)
    s.add_argument("--json", action="store_true", help="machine-readable output (with the ids)")
    s.add_argument("--no-check", action="store_true", help="don't contact the servers")

    s = command("sync", "send what is queued now, without playing",
                "Send every queued change now and say, per server, what is left and why (offline, paused, "
                "needs sign-in, waiting to identify). A progress bar shows on a terminal.",
                "playback-sync sync\nplayback-sync sync --timeout 120", sync_cmd.cmd_sync)
    s.add_argument("--timeout", type=float, default=30.0, help="seconds to try (default 30)")

    s = command("history", "what was sent to which server, when, and what it answered",
                "List the changes sent (or given up on) with the server's answer: saved, not sent because "
                "the server already had a newer state, or failed. Kept for retention_days (default 7).",
                "playback-sync history\nplayback-sync history --server home --since 2d\n"
                "playback-sync history --since 2026-12-01 --json", queue_cmds.cmd_history)
    s.add_argument("--server", metavar="NAME", help="only this server")
    s.add_argument("--since", metavar="WHEN", type=queue_cmds.parse_since,
                   help="only newer ones: 30m, 12h, 2d, 1w, yesterday or a date like 2026-12-01")
    s.add_argument("--json", action="store_true", help="machine-readable output (with the ids)")

    s = command("retry", "queue failed changes again and sync them now",
                "Put failed changes back in the queue with their attempts reset, then send them.",
                "playback-sync retry\nplayback-sync retry --server home --no-sync", queue_cmds.cmd_retry)
    s.add_argument("--server", metavar="NAME", help="only this server")
    s.add_argument("--no-sync", action="store_true", help="only queue them; the next player run sends them")
    s.add_argument("--timeout", type=float, default=30.0, help="seconds to try (default 30)")

    s = command("clear", "drop failed changes you give up on",
                "Drop failed changes (all, one server's, or the numbers given as `status` shows them) so "
                "they stop being reported. Asks first unless --yes; without a terminal --yes is required.",
                "playback-sync clear\nplayback-sync clear 11 12\nplayback-sync clear --server home --yes",
                queue_cmds.cmd_clear)
    s.add_argument("ids", nargs="*", metavar="ID", type=_change_id, help="change numbers (default: all failed)")
    s.add_argument("--server", metavar="NAME", help="only this server")
    s.add_argument("-y", "--yes", action="store_true", help="don't ask")

    s = command("pause", "hold changes back from one server or all (until resume)",
                "Stop sending to a server (or every server) in every process, across restarts, until "
                "`resume`. What you watch meanwhile is still recorded and sent after resume.",
                "playback-sync pause\nplayback-sync pause --server home", queue_cmds.cmd_pause)
    s.add_argument("--server", metavar="NAME", help="only this server (default: all)")

    s = command("resume", "send again to a paused server (or all)",
                "Lift a pause: what was recorded meanwhile is sent by the next player or `sync`.",
                "playback-sync resume\nplayback-sync resume --server home && playback-sync sync",
                queue_cmds.cmd_resume)
    s.add_argument("--server", metavar="NAME", help="only this server (default: all)")

    s = command("identify", "show which item (title and id) each server has for a file or URL",
                "Match a file or URL to each server's item the way playback does, and say how or why not.",
                "playback-sync identify ~/Videos/film.mkv\n"
                "playback-sync identify --provider-id imdb=tt0133093 film.mkv --json", media_cmds.cmd_identify)
    s.add_argument("targets", nargs="+", metavar="TARGET")
    s.add_argument("--provider-id", action="append", metavar="KIND=ID", default=[], type=_provider_id,
                   help="also match on a provider id, e.g. imdb=tt0133093")
    s.add_argument("--json", action="store_true", help="per server: item_id (or null), title, method, reason")

    command("settings", "open the settings dialog",
            "Open the settings window (servers, sign-in, path mappings, options); it saves the config file.",
            "playback-sync settings\nplayback-sync --config ~/other.toml settings", setup_cmds.cmd_settings)

    s = command("login", "sign in to a server from the terminal and save the token",
                "Sign in and save the token to the config file (0600). Without --url, servers on the local "
                "network are found and offered. Without a terminal the password is read from stdin.",
                "playback-sync login jellyfin\nplayback-sync login plex --url http://nas:32400\n"
                "echo \"$PASSWORD\" | playback-sync login emby --url http://nas:8096 --username me",
                setup_cmds.cmd_login)
    s.add_argument("server_type", choices=("jellyfin", "emby", "plex"))
    s.add_argument("--url", help="server URL (default: look on the local network, then ask)")
    s.add_argument("--username", help="user name (Jellyfin, Emby)")
    s.add_argument("--server-id", help="name for this server in the config")
    s.add_argument("--no-discover", action="store_true", help="don't look for servers on the network")

    from ..cli_mpv import add_commands as add_mpv_commands

    add_mpv_commands(sub)  # install mpv, uninstall mpv, attach (cli_mpv.py)
    for add in list(_EXTRA):
        add(sub, ep)
    _complete_help(sub, ep)
    return p


_EXAMPLES = {
    "install": "playback-sync install mpv\nplayback-sync install mpv --mpv-config-dir ~/.config/mpv",
    "uninstall": "playback-sync uninstall mpv",
    "attach": "playback-sync attach --ipc /tmp/mpv-socket",
}


def _complete_help(sub, ep) -> None:
    """Commands added by other modules get the same help: a description, examples, exit codes, config."""
    helps = {a.dest: a.help for a in sub._choices_actions}
    for name, s in sub.choices.items():
        if s.epilog is None:
            s.epilog = ep(_EXAMPLES.get(name, f"playback-sync {name} --help"))
            s.formatter_class = argparse.RawDescriptionHelpFormatter
        if not s.description:
            s.description = (helps.get(name) or name).capitalize() + "."


def main(argv: Optional[List[str]] = None) -> int:
    from .logs import setup_logging

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, "passthrough", False):
        parser.error("unrecognized arguments: " + " ".join(rest))
    from ..queue import QueueError
    from ..settings import ConfigError

    try:
        setup_logging(args.verbose)
        if getattr(args, "passthrough", False):
            return args.func(args, rest)
        return args.func(args)
    except (ConfigError, UsageError) as exc:
        print(f"playback-sync: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except QueueError as exc:
        print(f"playback-sync: {exc}", file=sys.stderr)
        return EXIT_STORAGE
    except KeyboardInterrupt:
        return 130
