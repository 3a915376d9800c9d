"""The settings dialog's action buttons: RunScript(service.playbacksync,ACTION[,SERVER_TYPE]).

Each action of ``settings.schema.ACTIONS`` has one handler here (``HANDLERS``,
keyed by its script argument); tests check that the two lists agree. An
action runs in its own short-lived Python of Kodi's; what needs the running
service's queue and worker (retry, status, sync now) is handed to it with
NotifyAll. Every action ends back in the settings dialog it was started from.
Messages are whole sentences, never an internal prefix or a raw exception
name; a failure says what to do.
"""
from __future__ import annotations

from typing import Callable, Dict, List

from ...config import SERVER_TYPES
from ...settings.schema import ACTIONS, TYPE_LABELS
from . import kodi_api
from .service import RUNNING_PROPERTY
from .settings import server_config


def _sentence(text: str) -> str:
    text = str(text).strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _ask_service(request: str) -> None:
    if not kodi_api.home_property(RUNNING_PROPERTY):
        kodi_api.ok("The Playback Sync service is not running. Turn it on under Add-ons › My add-ons › "
                    "Services, or restart Kodi.")
        return
    kodi_api.tell_service(request)


def test(server_type: str) -> None:
    from ...settings.actions import test_connection

    result = test_connection(server_config(server_type))
    kodi_api.log(f"test {server_type}: {result}")
    kodi_api.ok(_sentence(result))


def signin(server_type: str) -> None:
    server = server_config(server_type)
    if server_type == "plex":
        _plex_sign_in(server)
        return
    from ...settings.actions import sign_in_password

    username = kodi_api.ask("User name", server.username)
    if not username:
        return
    password = kodi_api.ask("Password", hidden=True)
    signed = sign_in_password(server, username, password)
    kodi_api.write_settings({f"{server_type}_username": username, f"{server_type}_user_id": signed.user_id,
                             f"{server_type}_token": signed.token})
    kodi_api.ok(f"Signed in to {TYPE_LABELS[server_type]} as {username}.")


def _plex_sign_in(server) -> None:
    from ...settings import actions

    pin_id, code = actions.plex_request_pin(server)
    progress = kodi_api.Progress(f"Go to plex.tv/link and enter the code [B]{code}[/B]")
    try:
        token = actions.plex_wait_for_token(server, pin_id, timeout=300, cancelled=progress.cancelled,
                                            sleep=kodi_api.sleep)
    except actions.ActionError:
        if progress.cancelled():  # the viewer closed the code dialog: nothing to say
            return
        raise
    finally:
        progress.close()
    kodi_api.write_settings({"plex_token": token})
    kodi_api.ok("Signed in to Plex.")


def retry() -> None:
    _ask_service("retry")


def status() -> None:
    _ask_service("status")


def sync() -> None:
    _ask_service("sync")


def pause() -> None:
    from ...app import set_paused_in

    set_paused_in(kodi_api.profile_dir(), None, True)  # read by the worker before each send, kept over restarts
    kodi_api.ok("Sync is paused. What you watch is still recorded and is sent when you choose Resume sync, "
                "also after a restart.")


def resume() -> None:
    from ...app import set_paused_in

    set_paused_in(kodi_api.profile_dir(), None, False)
    if kodi_api.home_property(RUNNING_PROPERTY):
        kodi_api.tell_service("sync")
    kodi_api.ok("Sync is resumed: the queued changes are being sent.")


HANDLERS: Dict[str, Callable[..., None]] = {
    "signin": signin, "test": test, "retry": retry, "status": status, "sync": sync, "pause": pause,
    "resume": resume,
}
BACK_TO_SETTINGS_LATER = {"status"}  # the service shows the status, then opens the settings itself


def run_action(argv: List[str]) -> None:
    kodi_api.install_logging()
    args = [a for a in argv[1:] if a]
    if not args or args[0] == "settings":  # started from Programs: open the settings
        kodi_api.open_settings()
        return
    action = next((a for a in ACTIONS if a.script_arg == args[0]), None)
    server_type = args[1] if len(args) > 1 else ""
    if action is None or action.per_type != bool(server_type) or (server_type and server_type not in SERVER_TYPES):
        kodi_api.log(f"unknown action {args}", kodi_api.ERROR)
        return
    try:
        HANDLERS[action.script_arg](*([server_type] if action.per_type else []))
    except Exception as exc:  # ActionError and ValueError carry a sentence for the viewer
        kodi_api.log(f"{action.key} {server_type} failed: {exc}", kodi_api.ERROR)
        kodi_api.ok(_sentence(exc))
    if action.script_arg not in BACK_TO_SETTINGS_LATER:
        kodi_api.open_settings()
