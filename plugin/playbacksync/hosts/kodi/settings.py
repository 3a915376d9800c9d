"""The add-on's settings (this Kodi profile's) as the library's Config."""
from __future__ import annotations

import re
from typing import Optional, Tuple

from . import kodi_api


def read_flat() -> dict:
    """Every setting's value; settings.xml is generated from the same schema (kodi_settings.py)."""
    from ...settings import kodi_setting_ids

    return kodi_api.read_settings(kodi_setting_ids())


def plain_problem(exc: Exception) -> str:
    """A settings error as the viewer reads it: the settings named, no file prefix."""
    problems = getattr(exc, "problems", None)
    if problems:
        return "Settings: " + "; ".join(_plain(p) for p in problems)
    return f"Settings: {exc}"


def _plain(problem) -> str:
    where = re.sub(r" \([a-z0-9_]+\)$", "", problem.key)  # the setting's label, not its internal id
    text = f"{problem.message} — {problem.fix}" if problem.fix else problem.message
    return f"{where}: {text}" if where else text


def load_config(flat: Optional[dict] = None) -> Tuple[Optional[object], str]:
    """(Config, "") or (None, what is wrong in words)."""
    from ...settings import config_from_flat

    try:
        return config_from_flat(read_flat() if flat is None else flat), ""
    except Exception as exc:  # bad settings: say which, keep running so a fix reloads
        return None, plain_problem(exc)


def server_config(server_type: str):
    """The one server of this type, as set now (turned on for the action: test or sign in before enabling)."""
    from ...settings import config_from_flat

    flat = read_flat()
    flat[f"{server_type}_enabled"] = "true"
    try:
        config = config_from_flat(flat)
    except Exception as exc:
        raise ValueError(plain_problem(exc)) from None
    server = next((s for s in config.servers if s.type == server_type), None)
    if server is None or not server.url:
        raise ValueError(f"Set the {server_type.capitalize()} server URL first.")
    return server
