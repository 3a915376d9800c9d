"""Journals left by older versions, imported into the queue once at start.

Older versions wrote changes they could not queue at quit to
``unqueued-changes.jsonl`` in the data folder, and a start claimed that file
by renaming it ``unqueued-changes.jsonl.<pid>`` before reading it; a start
killed in between left the renamed file, which no later start read. This
version writes no journal (every change is recorded in the queue the moment
it is made, before identification), so this module only reads what older
versions left: the file and any claimed ``.<pid>`` copy, whatever the pid.

Crash safety: each file is queued in one queue transaction that also
records the file's content digest (``SyncQueue.import_once``), and only then
removed. Killed before the commit, nothing was imported and the file is
still there; killed after it, the next start finds the digest, imports
nothing and removes the file. So every change in it is queued exactly once,
and two starts at once import it once (the queue's write lock orders them).
"""
from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
from typing import Callable, List, Optional, Tuple

from .changes import Change
from .tracker import TrackedChange
from .tracker.events import MediaRef

log = logging.getLogger(__name__)

FILENAME = "unqueued-changes.jsonl"


def leftover_files(folder: str) -> List[str]:
    """The journal and its claimed copies (``.<pid>``) in ``folder``, oldest first."""
    base = os.path.join(folder, FILENAME)
    found = [p for p in glob.glob(glob.escape(base) + ".*") if p[len(base) + 1:].isdigit()]
    if os.path.exists(base):
        found.append(base)
    return sorted(found, key=lambda p: (os.path.getmtime(p), p))


def read(path: str) -> Tuple[str, List, int]:
    """(content digest, the changes and tracked changes it holds, lines unreadable)."""
    with open(path, "rb") as f:
        data = f.read()
    items, bad = [], 0
    for number, line in enumerate(data.decode("utf-8", "surrogateescape").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = dict(json.loads(line))
            if record.pop("kind") == "change":
                items.append(Change(**{k: record[k] for k in Change.__dataclass_fields__ if k in record}))
            else:
                media = MediaRef(**record.pop("media"))
                items.append(TrackedChange(media=media, **record))
        except (ValueError, TypeError, KeyError) as exc:  # a line cut by a crash mid-write
            bad += 1
            log.error("%s line %d unreadable, skipped: %s", path, number, exc)
    return hashlib.sha256(data).hexdigest(), items, bad


def import_leftovers(folder: str, queue, to_changes: Callable[[TrackedChange], List[Change]],
                     tell: Optional[Callable[[str], None]] = None) -> int:
    """Queue what older versions' journals in ``folder`` hold (each file once). Returns how many."""
    total = 0
    for path in leftover_files(folder):
        try:
            digest, items, bad = read(path)
        except OSError as exc:
            log.error("cannot read %s: %s", path, exc)
            continue
        changes: List[Change] = []
        for item in items:
            changes.extend([item] if isinstance(item, Change) else to_changes(item))
        if queue.import_once("journal:" + digest, changes):
            total += len(changes)
            log.info("queued %d change(s) left by an older version in %s", len(changes), path)
        if bad and tell is not None:
            tell(f"{bad} line(s) of {path} could not be read (cut by a crash) and were skipped")
        try:
            os.remove(path)
        except OSError as exc:  # imported (the digest is recorded): only the file stays
            log.warning("could not remove %s: %s", path, exc)
    return total
