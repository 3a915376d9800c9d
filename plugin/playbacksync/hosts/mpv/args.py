"""``playback-sync play``'s mpv options: mpv command-line style, turned into python-mpv options."""
from __future__ import annotations

from typing import Dict, Iterable, List, Tuple

from .common import PlayerError


def parse_mpv_args(args: Iterable[str]) -> Tuple[Dict[str, str], List[str]]:
    """mpv command-line style options -> (python-mpv options, remaining targets).

    ``--key=value`` sets key; ``--flag`` sets it to yes; ``--no-flag`` to no;
    anything not starting with ``--`` is a target; ``--`` ends options.
    """
    options: Dict[str, str] = {}
    targets: List[str] = []
    only_targets = False
    for arg in args:
        if only_targets or not arg.startswith("--") or arg == "-":
            targets.append(arg)
        elif arg == "--":
            only_targets = True
        else:
            key, eq, value = arg[2:].partition("=")
            if not key:
                raise PlayerError(f"cannot read the mpv option {arg!r}")
            if not eq:
                key, value = (key[3:], "no") if key.startswith("no-") else (key, "yes")
            options[key] = value
    return options, targets
