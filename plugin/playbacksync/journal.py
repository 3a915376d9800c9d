"""Changes the player made that quitting left no time to queue.

At quit the sync service waits a bounded time for identification (the first
lookup of a file may need the server's whole item list). What is still not
identified then is written here, one JSON line each, and the next start
identifies and queues it, so a slow server at quit costs nothing. The file is
claimed by renaming it before it is read, so two players starting at once
never both replay it.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from typing import List, Union

from .changes import Change
from .paths import private_file
from .tracker import TrackedChange
from .tracker.events import MediaRef

log = logging.getLogger(__name__)

FILENAME = "unqueued-changes.jsonl"


def _record(item: Union[Change, TrackedChange]) -> dict:
    if isinstance(item, Change):
        return {"kind": "change", **asdict(item)}
    return {"kind": "tracked", "media": asdict(item.media), "change_type": item.change_type,
            "position_ms": item.position_ms, "duration_ms": item.duration_ms, "created_at": item.created_at}


def _item(record: dict) -> Union[Change, TrackedChange]:
    record = dict(record)
    if record.pop("kind") == "change":
        return Change(**{k: record[k] for k in Change.__dataclass_fields__})
    media = MediaRef(**record.pop("media"))
    return TrackedChange(media=media, **record)


def write(folder: str, items: List[Union[Change, TrackedChange]]) -> None:
    """Append items durably (the file is private: paths may be personal)."""
    if not items:
        return
    path = os.path.join(folder, FILENAME)
    private_file(path)
    with open(path, "a", encoding="utf-8") as f:
        for item in items:
            f.write(json.dumps(_record(item)) + "\n")  # \u escapes keep a non-UTF-8 file name intact
        f.flush()
        os.fsync(f.fileno())
    log.warning("%d change(s) not yet identified at quit kept in %s for the next start", len(items), path)


def claim(folder: str) -> tuple:
    """(items, claimed_path) left by an earlier run; remove claimed_path once they are queued."""
    path = os.path.join(folder, FILENAME)
    claimed = f"{path}.{os.getpid()}"
    try:
        os.rename(path, claimed)
    except FileNotFoundError:
        return [], None
    items = []
    with open(claimed, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                items.append(_item(json.loads(line)))
            except (ValueError, TypeError, KeyError) as exc:  # a line cut by a crash mid-write
                log.error("%s line %d unreadable, skipped: %s", claimed, number, exc)
    return items, claimed
