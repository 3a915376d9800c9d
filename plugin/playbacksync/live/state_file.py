"""What the live sessions leave for the next process: ``live-sessions.json`` in the data folder.

Per viewing (its session id) when it played (``windows``), who counted its play on each
server (``claims``) and what its reports set there (``outcomes``), so a later process, or a
``sync`` after a kill, never counts a viewing twice. Written whole and atomically
(``paths.write_private``: a temporary file, synced, renamed over it), private to the user (0600).
"""
from __future__ import annotations

import json
import logging
import os
from typing import Dict, List, Optional, Tuple

from ..paths import write_private
from .plan import Outcome

log = logging.getLogger(__name__)

Windows = Dict[str, List[Optional[float]]]
Claims = Dict[Tuple[str, str], str]
Outcomes = Dict[Tuple[str, str, str], Outcome]


def write_state(path: str, windows: Windows, claims: Claims, outcomes: Outcomes) -> None:
    doc = {"windows": windows, "claims": [[k[0], k[1], v] for k, v in claims.items()],
           "outcomes": [[k[0], k[1], k[2], o.started, o.stopped, o.furthest_ms, o.duration_ms,
                         o.started_wall, o.ended_wall] for k, o in outcomes.items()]}
    try:
        # 0600 like every file in the data folder: what was watched when is private.
        write_private(path, json.dumps(doc), prefix=".live-sessions-")
    except OSError as e:  # a full or read-only disk: live reports go on, the claims stay in memory
        log.warning("could not save the live sessions' state to %s: %s", path, e)


def read_state(path: str, now: float) -> Tuple[Windows, Claims, Outcomes, Dict[Tuple[str, str], str]]:
    """(windows, claims, outcomes, items by (server, session)); empty when there is none, what
    could be read when it is damaged (said in the log)."""
    windows: Windows = {}
    claims: Claims = {}
    outcomes: Outcomes = {}
    items: Dict[Tuple[str, str], str] = {}
    if not os.path.exists(path):
        return windows, claims, outcomes, items
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        windows = {str(k): [v[0], v[1]] for k, v in doc.get("windows", {}).items()}
        claims = {(c[0], c[1]): c[2] for c in doc.get("claims", [])}
        for sid, item, session, started, stopped, furthest, duration, begun, ended in doc.get("outcomes", []):
            outcomes[(sid, item, session)] = Outcome(started=started, stopped=stopped, furthest_ms=furthest,
                                                     duration_ms=duration, started_wall=begun, ended_wall=ended)
            items[(sid, session)] = item
        # A viewing whose process was killed never ended: it lasted at most twice its length and an hour.
        for session, window in windows.items():
            if window[1] is None:
                length = max([o.duration_ms or 0 for k, o in outcomes.items() if k[2] == session] + [0])
                window[1] = min(now, window[0] + 2 * length / 1000 + 3600)
    except (OSError, ValueError, TypeError, KeyError, IndexError) as e:
        # What was read before the damage is kept: a claim read is a play never counted twice.
        log.warning("ignoring the unreadable rest of the live sessions' state file %s: %s", path, e)
    return windows, claims, outcomes, items
