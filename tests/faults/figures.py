"""The crash trials' figures: one trial's result, reading a queue file, what counts as lost,
and the sums `make soak` prints (see crash.py for the trials themselves)."""
from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

from tests.fakes.mediabrowser import TICKS_PER_SECOND

PROGRESS_INTERVAL = 2  # the settings' minimum: the tightest bound the figures can show
TABLE = "playback_sync_queue"


@dataclass
class TrialResult:
    n: int
    mode: str
    killed: bool
    kill_after_s: float
    last_position_s: float
    acknowledged: int
    lost: int
    stranded: int
    duplicates: int
    still_queued: int
    position_error_s: float
    server_played: bool
    server_position_s: float
    notes: List[str] = field(default_factory=list)
    unsaved_clean_exit: int = 0  # play ended by itself, yet the watched mark never got saved
    dropped_unidentified: int = 0  # played to the end while identification could not finish: mark lost
    lost_to_damage: int = 0  # rows the salvage's report counts as lost (damage mode)

    @property
    def saved_before_kill(self) -> bool:
        """A change was in the queue when the process died (past the startup window)."""
        return self.acknowledged > 0


def read_rows(db: Path) -> List[dict]:
    """Every row of the queue file (committed WAL frames included), by id."""
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        con.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in con.execute(f"SELECT * FROM {TABLE} ORDER BY id")]
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []  # killed while the schema was being made: nothing acknowledged
            raise
    finally:
        con.close()


def lost_and_queued(acknowledged: List[dict], final: Dict[int, dict], data, notes: List[str]):
    """Acknowledged rows that neither reached the server nor are still queued."""
    lost = queued = 0
    watched = [r for r in acknowledged if r["change_type"] == "mark_watched"]
    progress = [r for r in acknowledged if r["change_type"] == "progress_update"]
    for r in acknowledged:
        now = final.get(r["id"])
        if now is None:
            lost += 1
            notes.append(f"row {r['id']} vanished")
        elif now["status"] in ("pending", "failed"):
            queued += 1
    if watched:
        if not data.played:
            still = any(final.get(r["id"], {}).get("status") in ("pending", "failed") for r in watched)
            if not still:
                lost += 1
                notes.append("an acknowledged watched mark is not on the server")
    elif progress:
        # The item's latest acknowledged position is what the server must hold
        # (earlier ones are replaced on purpose: coalescing and dedup).
        last = max(progress, key=lambda r: (r["created_at"], r["id"]))
        want = last["position_ms"]
        now = final.get(last["id"])
        have = data.position_ticks * 1000 // TICKS_PER_SECOND
        if have != want and (now is None or now["status"] not in ("pending", "failed")):
            lost += 1
            notes.append(f"server position {have} ms, last acknowledged {want} ms (row {last['id']} "
                         f"{now and now['status']}/{now and now['resolution']})")
    return lost, queued


def summarize(results: List[TrialResult]) -> Dict[str, object]:
    killed = [r for r in results if r.killed]
    return {
        "trials": len(results),
        "killed": len(killed),
        "by_mode": dict(Counter(r.mode for r in killed)),
        "acknowledged_changes": sum(r.acknowledged for r in results),
        "lost": sum(r.lost for r in results),
        "stranded_in_syncing": sum(r.stranded for r in results),
        "watched_applied_twice": sum(r.duplicates for r in results),
        "still_queued_after_restart": sum(r.still_queued for r in results),
        "max_position_error_s": max((r.position_error_s for r in results), default=0.0),
        # Once a change is in the queue the server trails the player by at most one interval;
        # before that (the first 2-3 s of a file, plus identification) everything played is at stake.
        "max_position_error_after_first_save_s": max((r.position_error_s for r in results if r.saved_before_kill),
                                                     default=0.0),
        "max_position_error_startup_window_s": max((r.position_error_s for r in results
                                                    if not r.saved_before_kill), default=0.0),
        "clean_exits_unsaved": sum(r.unsaved_clean_exit for r in results),
        "dropped_unidentified": sum(r.dropped_unidentified for r in results),
        "lost_to_damage_reported": sum(r.lost_to_damage for r in results),
        "trials_by_mode": dict(Counter(r.mode for r in results)),
        "progress_interval_s": PROGRESS_INTERVAL,
        "position_error_over_interval": sum(1 for r in results if r.position_error_s > PROGRESS_INTERVAL),
        "watched_on_server": sum(1 for r in results if r.server_played),
    }
