"""How identification came out, for people (one line per server) and for JSON."""
from __future__ import annotations

import re
from typing import Dict, Mapping

from .answers import Match

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _one_line(text: str) -> str:
    # file names may hold newlines or tabs: show them escaped, keep one line per server
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def identify_report(results: Mapping[str, Match]) -> str:
    """``server: item ID (by METHOD: how)`` or ``server: not identified: why``, one line each."""
    lines = []
    for server_id, match in results.items():
        if match.item_id is not None:
            lines.append("%s: item %s (by %s: %s)" % (server_id, match.item_id, match.method, match.reason))
        else:
            lines.append("%s: not identified: %s" % (server_id, match.reason))
    return "\n".join(_one_line(line) for line in lines)


def identify_json(results: Mapping[str, Match]) -> Dict[str, dict]:
    """``{server_id: {"item_id": str|None, "method": "url"|"path"|"provider_id"|None, "reason": str}}``."""
    return {server_id: match.to_json() for server_id, match in results.items()}
