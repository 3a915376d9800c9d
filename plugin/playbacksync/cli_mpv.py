"""mpv's commands for ``playback-sync``: ``install mpv``, ``uninstall mpv``, ``attach``.

``cli.build_parser`` calls ``add_commands``; the work is in ``hosts/mpv``
(imported when a command runs: attach loads the sync service).
"""
from __future__ import annotations

EXIT_OK, EXIT_ATTENTION = 0, 1


def cmd_install(args) -> int:
    from .hosts.mpv.install import agent_command, install

    lines, ok = install(args.mpv_config_dir, agent_command(args.config, args.data_dir))
    print("\n".join(lines))
    return EXIT_OK if ok else EXIT_ATTENTION


def cmd_uninstall(args) -> int:
    from .hosts.mpv.install import uninstall

    lines, ok = uninstall()
    print("\n".join(lines))
    return EXIT_OK if ok else EXIT_ATTENTION


def cmd_attach(args) -> int:
    from .hosts.mpv.attach import attach

    return attach(args)


def script_status() -> list:
    """For ``status --json``: each installed mpv script, {"path", "version"} (version None: changed)."""
    from .hosts.mpv.install import installed

    return [{"path": path, "version": version} for path, version in installed()]


def status_lines() -> list:
    """For ``status``: whether the mpv script is installed, where, which version."""
    found = script_status()
    if not found:
        return ["mpv script: not installed (run `playback-sync install mpv`)"]
    return [f"mpv script: version {s['version'] or 'unknown (changed since install)'} at {s['path']}" for s in found]


def add_commands(sub) -> None:
    for name, func, text in (("install", cmd_install, "install the mpv script: every mpv you start syncs"),
                             ("uninstall", cmd_uninstall, "remove what `install` added")):
        s = sub.add_parser(name, help=text)
        s.add_argument("player", choices=("mpv",))
        if name == "install":
            s.add_argument("--mpv-config-dir", metavar="DIR",
                           help="mpv's config folder (default: $MPV_HOME, else the usual one; Celluloid too)")
        s.set_defaults(func=func)

    s = sub.add_parser("attach", help="sync an mpv that is already running (the mpv script starts this)")
    s.add_argument("--ipc", required=True, metavar="PATH", help="mpv's JSON IPC socket (input-ipc-server)")
    s.add_argument("--owned", action="store_true", help="the socket was made for this agent: remove it at the end")
    s.add_argument("--mpv-pid", type=int, metavar="PID", help="the mpv to serve: stop waiting once it is gone")
    s.set_defaults(func=cmd_attach)
