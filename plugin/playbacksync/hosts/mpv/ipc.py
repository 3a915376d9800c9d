"""The IPC transport: an mpv started elsewhere (file manager, terminal, a front-end), over JSON IPC.

The client is python-mpv-jsonipc (pinned; jellyfin-mpv-shim uses it): it
frames mpv's JSON lines, matches replies to requests, and runs property
observers and event callbacks in order on one event thread, which is the
thread the session's ``on_*`` methods need. It has no public "wait until the
last event ran" call, so ``AttachHost.wait`` joins its event thread after the
socket closed (``event_handler``: the library stops it behind every event it
had already read).

Reads are one request each (the sampler makes about five a second while
playing); the player never waits on them. The library waits 120 s for an
answer by default (a module setting); a frozen mpv must not hold the agent
that long, so ``REPLY_SECONDS`` replaces it.
"""
from __future__ import annotations

import logging
import os
import stat
import threading
import time
from typing import Callable, Optional

import python_mpv_jsonipc as jsonipc

from ...tracker.events import PlaybackEvent
from .common import MESSAGE, OBSERVED, UNLOAD_MESSAGE
from .session import MpvSession

log = logging.getLogger(__name__)

REPLY_SECONDS = 10.0
jsonipc.TIMEOUT = REPLY_SECONDS  # read by the library at each request
AGENT_MESSAGE = "playback-sync-agent"  # to the Lua script: "ready" (also the answer to a ping)
PING_MESSAGE = "playback-sync-ping"


class IpcUnavailable(Exception):
    """No mpv answers on the socket (gone, or not ours to open). ``gone``: the mpv quit already."""

    def __init__(self, message: str, gone: bool = False):
        super().__init__(message)
        self.gone = gone


class _JsonIpc:
    """The session's Transport over a python-mpv-jsonipc client."""

    def __init__(self, client):
        self.client = client

    def get(self, name: str):
        try:
            return self.client.command("get_property", name)
        except Exception:  # unavailable now (MPVError), or the socket closed
            return None

    def get_name(self, name: str) -> str:
        value = self.get(name)
        return "" if value is None else str(value)

    def command_async(self, *args: str) -> None:
        try:
            self.client.command_async(*args, callback=_command_done)
        except Exception:
            log.debug("mpv did not take %s (socket closed?)", args[0])

    def working_directory(self) -> Optional[str]:
        # mpv resolves a relative path against its own directory, not the agent's.
        return self.get("working-directory") or None


def _command_done(error, _result=None) -> None:
    if error is not None and not isinstance(error, BrokenPipeError):
        log.warning("mpv refused a playback-sync command: %s", error)


def connect(path: str, timeout: float = 5.0, mpv_pid: Optional[int] = None):
    """A client on mpv's socket; mpv may still be creating it, so this tries for ``timeout``.

    ``mpv_pid``: the mpv this is for; trying stops once it is gone, and a socket
    answered by another process is refused.
    """
    deadline = time.monotonic() + timeout
    closed = threading.Event()
    while True:
        if mpv_pid is not None and not _alive(mpv_pid):
            raise IpcUnavailable(f"mpv (pid {mpv_pid}) quit before its agent connected", gone=True)
        try:
            client = jsonipc.MPV(start_mpv=False, ipc_socket=path, quit_callback=closed.set)
        except (OSError, jsonipc.MPVError, TimeoutError) as exc:
            if time.monotonic() >= deadline:
                raise IpcUnavailable(f"no mpv answers on {path}: {exc}") from None
            time.sleep(0.05)
            continue
        pid = _pid_of(client)
        if mpv_pid is not None and pid != mpv_pid:
            client.terminate()
            if pid is None:  # it closed while we asked: the mpv is quitting
                raise IpcUnavailable(f"mpv (pid {mpv_pid}) quit while its agent connected", gone=True)
            raise IpcUnavailable(f"{path} belongs to another mpv than pid {mpv_pid}")
        client.playback_sync_closed = closed  # set by the reader thread when the socket closes
        client.playback_sync_pid = pid
        return client


def _pid_of(client) -> Optional[int]:
    try:
        return int(client.command("get_property", "pid"))
    except Exception:
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def close_inherited_sockets() -> None:
    """Close sockets inherited from mpv (its IPC listener, when it started us without close-on-exec).

    Holding mpv's listener would keep its socket accepting after mpv is gone, so a
    client (this agent too) could connect and wait for an answer that never comes.
    Call before opening any socket of our own.
    """
    folder = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
    try:
        fds = [int(n) for n in os.listdir(folder)]
    except OSError:
        return
    for fd in fds:
        if fd <= 2:
            continue
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.close(fd)
        except OSError:
            pass


class AttachHost:
    """An ``MpvSession`` fed from mpv's JSON IPC. ``start()``, ``wait()``, ``close()``.

    ``client``: from ``connect``. Keywords as ``MpvSession``.
    """

    def __init__(self, client, sink: Callable[[PlaybackEvent], None], **session_options):
        self.client = client
        self.session = MpvSession(_JsonIpc(client), sink, **session_options)
        self._closed: threading.Event = client.playback_sync_closed

    def start(self) -> None:
        client, session = self.client, self.session
        client.bind_event("start-file", lambda e: session.on_start_file(e.get("playlist_entry_id")))
        client.bind_event("file-loaded", lambda e: session.on_file_loaded())
        client.bind_event("seek", lambda e: session.on_seek())
        client.bind_event("playback-restart", lambda e: session.on_playback_restart())
        client.bind_event("end-file", lambda e: session.on_end_file(e.get("playlist_entry_id"), e.get("reason"),
                                                                    e.get("file_error")))
        client.bind_event("shutdown", lambda e: session.stop_sampling())
        client.bind_event("client-message", self._on_message)
        for name in OBSERVED:
            client.bind_property_observer(name, session.on_property)
        session.start()
        session.adopt()  # started after the first frame: the file playing now is ours too
        self.say_ready()

    def say_ready(self) -> None:
        self.session.transport.command_async("script-message", AGENT_MESSAGE, "ready", str(os.getpid()))

    def _on_message(self, event) -> None:
        args = [str(a) for a in event.get("args") or ()]
        if not args:
            return
        if args[0] == UNLOAD_MESSAGE:
            self.session.on_unload_message(*args[1:3])
        elif args[0] == MESSAGE and len(args) > 1:
            self.session.on_user_message(args[1])
        elif args[0] == PING_MESSAGE:
            self.say_ready()

    def closed(self) -> bool:
        return self._closed.is_set()

    def wait(self, timeout: Optional[float] = None, stop: Optional[threading.Event] = None) -> bool:
        """Until mpv's socket closes (mpv quit or was killed) or ``stop`` is set; True if it closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._closed.wait(0.2):
            if (stop is not None and stop.is_set()) or (deadline is not None and time.monotonic() >= deadline):
                return False
        # Every event read before the close still runs (in order) before we end the viewing.
        self.client.event_handler.join(5)
        return True

    def close(self) -> None:
        """End what mpv never ended (killed: at the last position seen) and let go of the socket."""
        self.session.stop()
        self.session.end_open_entry("quit")
        try:
            self.client.terminate()
        except Exception:
            log.debug("closing the IPC client failed", exc_info=True)
