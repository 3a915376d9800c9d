"""Which servers the user paused: a small JSON file, ``paused.json``, in the data folder.

``playback-sync pause`` writes it, the worker of every process (mpv, Kodi,
``sync``) reads it before it claims changes, so a pause holds across processes
and restarts until ``resume``. Changes made meanwhile are queued (and
coalesced) as usual; only sending waits.

The file holds ``{"paused": [ids...]}``; the id ``"*"`` means every server.
Reads are cheap: the parsed set is cached per file and read again only when
the file's (mtime, size, inode) changes, so each claim can ask. Writes are
atomic (a private temporary file renamed over the old one), mode 0600.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from typing import Dict, FrozenSet, Iterable, Optional, Tuple

from ..paths import write_private

log = logging.getLogger(__name__)

FILENAME = "paused.json"
ALL = "*"

_cache: Dict[str, Tuple[Tuple, FrozenSet[str]]] = {}
_cache_lock = threading.Lock()


def _file(data_dir: str) -> str:
    return os.path.join(data_dir, FILENAME)


def paused_servers(data_dir: Optional[str]) -> FrozenSet[str]:
    """The paused server ids ("*" = all). An absent or unreadable file means none paused."""
    if not data_dir:
        return frozenset()
    path = _file(data_dir)
    try:
        st = os.stat(path)
    except OSError:
        return frozenset()
    stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
    with _cache_lock:
        hit = _cache.get(path)
        if hit is not None and hit[0] == stamp:
            return hit[1]
    value = _read(path)
    with _cache_lock:
        _cache[path] = (stamp, value)
    return value


def _read(path: str) -> FrozenSet[str]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        ids = data.get("paused", []) if isinstance(data, dict) else []
        return frozenset(str(i) for i in ids if isinstance(i, str) and i)
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable pause file %s: %s", path, exc)
        return frozenset()


def is_paused(data_dir: Optional[str], server_id: str) -> bool:
    held = paused_servers(data_dir)
    return ALL in held or server_id in held


def set_paused(data_dir: str, server_id: Optional[str], paused: bool,
               all_servers: Iterable[str] = ()) -> FrozenSet[str]:
    """Pause or resume one server (``server_id``) or all (None). Returns the new set.

    Resuming one server while all are paused turns "*" into the explicit list
    ``all_servers`` minus that one (so give the configured ids then).
    """
    held = set(paused_servers(data_dir))
    if server_id is None:
        held = {ALL} if paused else set()
    elif paused:
        held.add(server_id)
    else:
        if ALL in held:
            held = (held - {ALL}) | set(all_servers)
        held.discard(server_id)
    _write(data_dir, sorted(held))
    return frozenset(held)


def _write(data_dir: str, ids) -> None:
    os.makedirs(data_dir, mode=0o700, exist_ok=True)
    write_private(_file(data_dir), json.dumps({"paused": list(ids)}), prefix=".paused-")
