"""mpv's commands for ``playback-sync``: ``install mpv``, ``uninstall mpv``, ``attach``.

``parser.build_parser`` calls ``add_commands``; the work is in ``hosts/mpv``
(imported when a command runs: attach loads the sync service).
"""
from __future__ import annotations

import argparse

from .common import EXIT_ATTENTION, EXIT_OK


def cmd_install(args) -> int:
    from ..hosts.mpv.install import agent_command, install

    lines, ok = install(args.mpv_config_dir, agent_command(args.config, args.data_dir))
    print("\n".join(lines))
    return EXIT_OK if ok else EXIT_ATTENTION


def cmd_uninstall(args) -> int:
    from ..hosts.mpv.install import uninstall

    lines, ok = uninstall()
    print("\n".join(lines))
    return EXIT_OK if ok else EXIT_ATTENTION


def cmd_attach(args) -> int:
    from ..hosts.mpv.attach import attach

    return attach(args)


def script_status() -> list:
    """For ``status --json``: each installed mpv script, {"path", "version"} (version None: changed)."""
    from ..hosts.mpv.install import installed

    return [{"path": path, "version": version} for path, version in installed()]


def status_lines() -> list:
    """For ``status``: whether the mpv script is installed, where, which version."""
    found = script_status()
    if not found:
        return ["mpv script: not installed (run `playback-sync install mpv`)"]
    return [f"mpv script: version {s['version'] or 'unknown (changed since install)'} at {s['path']}" for s in found]


def add_commands(sub, epilog) -> None:
    """``install mpv``, ``uninstall mpv`` and ``attach``, with the same help as every command."""
    def command(name, help_, description, examples, func):
        s = sub.add_parser(name, help=help_, description=description, epilog=epilog(examples),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        s.set_defaults(func=func)
        return s

    s = command("install", "install the mpv script: every mpv you start syncs",
                "Put a small script into mpv's scripts folder (and Celluloid's, when found). Every mpv you "
                "start then starts an agent that syncs what you watch; say what else to do for IINA, "
                "mpv.net and SMPlayer. Installing twice changes nothing.",
                "playback-sync install mpv\nplayback-sync install mpv --mpv-config-dir ~/portable_config",
                cmd_install)
    s.add_argument("player", choices=("mpv",))
    s.add_argument("--mpv-config-dir", metavar="DIR",
                   help="mpv's config folder (default: $MPV_HOME, else the usual one; Celluloid too)")
    s = command("uninstall", "remove what `install` added",
                "Remove exactly the files `install mpv` added; the folder is left as it was.",
                "playback-sync uninstall mpv", cmd_uninstall)
    s.add_argument("player", choices=("mpv",))
    s = command("attach", "sync an mpv that is already running (the mpv script starts this)",
                "Serve one running mpv over its JSON IPC socket: what it plays is recorded and synced. "
                "When mpv quits, keep sending for agent_drain_seconds, then exit; the rest stays queued.",
                "playback-sync attach --ipc /run/user/1000/mpv-1234.sock", cmd_attach)
    s.add_argument("--ipc", required=True, metavar="PATH", help="mpv's JSON IPC socket (input-ipc-server)")
    s.add_argument("--owned", action="store_true", help="the socket was made for this agent: remove it at the end")
