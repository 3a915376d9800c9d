"""Damage from outside to a queue file at rest, for the crash trials' ``damage`` mode (`make soak`).

Only damage the file format lets the queue find is drawn: a cut main file, a
page of it overwritten, a flipped byte of the -wal (every byte is under a
checksum), a -wal cut inside a page. Undetectable damage (a byte changed inside
a value no index copies; a -wal cut exactly at a frame boundary) is the
documented limit (README, "Clean-up and failures") and is covered by
tests/test_queue_damage_properties.py, not here: a trial must be able to tell a
lost change from a reported one.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

KINDS = ("cut main file", "damaged page", "flipped -wal byte", "cut -wal inside a page")


def damage(data_dir: Path, rng) -> Optional[str]:
    """Damage ``data_dir``'s queue file (and/or its -wal) one way, drawn with ``rng``; the kind, or
    None when there is no queue file to damage."""
    db = Path(data_dir) / "queue.sqlite"
    wal = Path(str(db) + "-wal")
    if not db.exists() or db.stat().st_size == 0:
        return None
    has_wal = wal.exists() and wal.stat().st_size > 32 + 24
    kind = rng.choice(KINDS if has_wal else KINDS[:2])
    if kind == "damaged page":
        raw = bytearray(db.read_bytes())
        page = int.from_bytes(raw[16:18], "big") if len(raw) >= 100 else 0
        page = 65536 if page == 1 else page
        if not page or len(raw) < 2 * page:
            kind = "cut main file"
        else:
            at = rng.randrange(1, len(raw) // page) * page
            raw[at:at + page] = bytes(rng.randrange(256) for _ in range(page))
            db.write_bytes(bytes(raw))
    if kind == "cut main file":
        with open(db, "r+b") as fh:
            fh.truncate(rng.randrange(1, db.stat().st_size))
    elif kind == "flipped -wal byte":
        data = bytearray(wal.read_bytes())
        data[rng.randrange(len(data))] ^= rng.randrange(1, 256)
        wal.write_bytes(bytes(data))
    elif kind == "cut -wal inside a page":
        with open(wal, "rb") as fh:
            page = int.from_bytes(fh.read(12)[8:12], "big")
        frame = 24 + page
        frames = max(1, (wal.stat().st_size - 32) // frame)
        with open(wal, "r+b") as fh:
            fh.truncate(32 + rng.randrange(frames) * frame + 24 + rng.randrange(1, page))
    return kind


def report(data_dir: Path) -> Optional[dict]:
    """The newest damage report the queue wrote beside the moved file (salvage.py), or None."""
    found = sorted(Path(data_dir).glob("queue.sqlite.damage-*.json"))
    return json.loads(found[-1].read_text(encoding="utf-8")) if found else None


def unaccounted(acknowledged, final, found: Optional[dict]) -> int:
    """Acknowledged rows gone after the salvage that no report counts (0 when every one is counted,
    or the report says more may be gone than it could count)."""
    vanished = sum(1 for r in acknowledged if r["id"] not in final)
    if not vanished:
        return 0
    if found is None:
        return vanished  # dropped silently
    if found.get("maybe_more") or found.get("unreadable_file"):
        return 0
    return max(0, vanished - int(found.get("lost", 0)))
