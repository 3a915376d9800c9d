"""``playback-sync attach --ipc PATH``: the agent the installed mpv script starts for its mpv.

One agent per mpv process (a lock per mpv pid keeps a second one out), all
agents sharing the one queue. It connects to mpv's JSON IPC socket, reads
the settings, runs the sync service and an ``AttachHost`` until mpv quits or
its socket closes, then sends what is queued for up to ``agent_drain_seconds``
and exits; what is left stays queued for the next agent or ``sync``. mpv
never waits on it: killing the agent leaves mpv playing.

Exit codes: 0 served (or another agent serves this mpv, or the mpv quit
before the agent connected); 2 no mpv on the socket, or settings that cannot
be used (also shown on mpv's OSD).
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from ...app import SyncService
from ...paths import state_dir
from ...settings import ConfigError
from ...settings.locate import Locations
from .common import edit_settings
from .ipc import AGENT_MESSAGE, AttachHost, IpcUnavailable, close_inherited_sockets, connect

log = logging.getLogger(__name__)

EXIT_OK, EXIT_USAGE = 0, 2
CONNECT_SECONDS = 10.0


def _agent_lock(mpv_pid) -> "object | None":
    """Hold a lock for this mpv's agent; None if another agent holds it. Released by the kernel at exit."""
    try:
        import fcntl
    except ImportError:  # Windows: the Lua script starts one agent per mpv; no second check
        return open(os.devnull, "w")
    folder = os.path.join(state_dir(), "agents")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    handle = open(os.path.join(folder, f"mpv-{mpv_pid}.lock"), "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def _remove_private_socket(path: str) -> None:
    """The socket the Lua script made for this mpv (``--owned``): gone with mpv, also after a kill."""
    try:
        if os.path.exists(path) and not os.path.isdir(path):
            os.unlink(path)
        parent = os.path.dirname(path)
        if os.path.basename(parent).startswith("playback-sync-"):  # a private temp dir of ours
            os.rmdir(parent)
    except OSError:
        pass


def attach(args) -> int:
    locations = Locations.from_args(args)
    close_inherited_sockets()
    try:
        client = connect(args.ipc, CONNECT_SECONDS, getattr(args, "mpv_pid", None))
    except IpcUnavailable as exc:
        if getattr(args, "owned", False):
            _remove_private_socket(args.ipc)
        if exc.gone:  # mpv quit within a moment of its first frame: nothing to serve
            log.info("attach: %s", exc)
            return EXIT_OK
        print(f"playback-sync: {exc}", file=sys.stderr)
        log.error("attach: %s", exc)
        return EXIT_USAGE
    lock = _agent_lock(args.mpv_pid or client.playback_sync_pid)
    if lock is None:
        log.info("attach: another agent serves this mpv")
        client.terminate()
        return EXIT_OK
    try:
        config = locations.load_config()
    except ConfigError as exc:
        first = str(exc).splitlines()[0]
        log.error("attach: %s", exc)
        try:
            client.command("show-text", f"Playback Sync: not syncing, the settings need fixing: {first}", "8000")
            client.command("script-message", AGENT_MESSAGE, "failed")  # the script adds no line of its own
        except (OSError, TimeoutError):
            pass  # mpv is gone already
        client.terminate()
        lock.close()
        return EXIT_USAGE
    service = SyncService(config, locations.data_dir_override())
    stop = threading.Event()

    def open_settings():
        try:
            fresh = edit_settings(locations)
        except Exception as exc:
            host.session.show(f"Playback Sync: settings not reloaded: {exc}")
            return
        host.session.set_notifications(fresh.sync.notifications, [s.id for s in fresh.enabled_servers()])
        service.reload(fresh)

    host = AttachHost(client, service.handle, subscribe=service.subscribe, on_settings=open_settings)
    host.session.set_notifications(config.sync.notifications, [s.id for s in config.enabled_servers()])
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    service.start()
    try:
        host.start()
        log.info("attach: serving mpv on %s", args.ipc)
        host.wait(stop=stop)
    except (OSError, TimeoutError) as exc:  # mpv went away while we were attaching
        log.info("attach: mpv is gone: %s", exc)
    finally:
        host.close()
        if getattr(args, "owned", False):
            _remove_private_socket(args.ipc)
        drain = float(service.config.sync.agent_drain_seconds)
        try:
            service.wait_ready(10)
            if not service.drain(drain):
                log.info("attach: stopped sending (server away, or %s s passed); the rest stays queued", drain)
        except Exception as exc:
            log.error("sync service failed: %s", exc)
        service.stop(3.0)
        lock.close()
    return EXIT_OK
