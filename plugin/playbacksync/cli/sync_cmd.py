"""`sync`: send what is queued now and say, per server, what is left and why.

The wait is driven by the worker's events (a change closed, a server went
offline or refused the sign-in): after each, the queue is counted again.
A one-second heartbeat covers closes the worker makes without an event
(duplicates dropped inside a batch), so nothing hangs until the timeout.
"""
from __future__ import annotations

import threading
import time
from typing import Dict, List

from ..changes import FAILED, PENDING, SYNCING
from . import describe as d
from .common import EXIT_ATTENTION, EXIT_OK, data_dir_arg, data_folder, load_config, open_queue
from .progress import Progress

HEARTBEAT = 1.0
HELD = ("paused", "auth_required", "offline")


def cmd_sync(args) -> int:
    config = load_config(args)
    return drain(args, config, args.timeout)


def _open_counts(counts: Dict, ids: List[str]) -> Dict[str, int]:
    return {sid: counts.get(sid, {}).get(PENDING, 0) + counts.get(sid, {}).get(SYNCING, 0) for sid in ids}


def drain(args, config, timeout: float) -> int:
    """Run the sync service until the configured servers have nothing more to send now, or ``timeout``.

    It talks to the service through its host API (subscribe, sync_now, status) and reads the
    queue through a handle of its own, as every queue command does.
    """
    from .. import legacy_journal

    ids = [s.id for s in config.enabled_servers()]
    q = open_queue(args, config)
    try:
        before = _open_counts(q.counts(), ids)
        # Changes an older version left in its journal are queued when the service opens (app.py).
        leftovers = legacy_journal.leftover_files(q.folder) if ids else []
        if not sum(before.values()) and not leftovers:
            print("Nothing to send." if ids else "No servers configured: nothing to send.")
            return _report(q, ids, {}, {}, sent=None)
        _read_libraries_for_waiting_rows(args, config, q, ids)
        states, last_words = _send(args, config, q, ids, sum(before.values()), timeout)
        sent = max(0, sum(before.values()) - sum(_open_counts(q.counts(), ids).values()))
        return _report(q, ids, states, last_words, sent=sent)
    finally:
        q.close()


def _send(args, config, q, ids, total: int, timeout: float):
    from ..app import SyncService

    service = SyncService(config, data_dir_arg(args))
    changed = threading.Event()
    last_words: Dict[str, str] = {}  # server -> why it went offline / refused
    seen: set = set()  # servers whose lane has made its first pass

    def on_event(event):
        if event.kind in ("offline", "auth_required") and event.source_id:
            last_words[event.source_id] = event.message
        seen.add(event.source_id)
        changed.set()

    unsubscribe = service.subscribe(on_event)
    service.start()
    bar = Progress("sending", total)
    deadline = time.monotonic() + timeout
    # A change whose last send got no answer (a crash or quit mid-request) is sent or judged only
    # once that send can no longer land (see worker.py): wait for it rather than report it pending.
    in_doubt = max((r.unsure_until or 0.0 for r in q.rows(statuses=(PENDING,))), default=0.0)
    if in_doubt > time.time():
        deadline = max(deadline, time.monotonic() + (in_doubt - time.time()) + timeout)
    states: Dict[str, str] = {}
    try:
        service.wait_ready(10)
        service.sync_now()
        while True:
            changed.clear()
            status = service.status()
            states = {sid: st.state for sid, st in status.items()}
            left = {sid: status[sid].waiting() if sid in status else 0 for sid in ids}
            if sum(left.values()) > total:  # the service queued an older version's journal at open
                total = sum(left.values())
                bar.update(0, total)
            bar.update(total - sum(left.values()))
            remaining = deadline - time.monotonic()
            if not sum(left.values()) or remaining <= 0 or _nothing_more_now(q, states, left, seen, remaining):
                break
            changed.wait(min(remaining, HEARTBEAT))
    finally:
        bar.close()
        unsubscribe()
        service.stop(3.0)
    return states, last_words


def _read_libraries_for_waiting_rows(args, config, q, ids) -> None:
    """Changes waiting to identify need the server's item list: a first one is read here, with progress."""
    need = sorted({r.source_id for r in q.rows(statuses=(PENDING,)) if d.waiting_to_identify(r)} & set(ids))
    if not need:
        return
    from ..backends import make_backend
    from ..identify import ItemIndex
    from .library import read_new_libraries

    backends = {s.id: make_backend(s) for s in config.enabled_servers() if s.id in need}
    index = ItemIndex.open_or_temporary(data_folder(args))
    try:
        read_new_libraries(index, backends, need, say_errors=False)
    finally:
        index.close()
        for b in backends.values():
            b.close()


def _nothing_more_now(q, states: Dict[str, str], left: Dict[str, int], seen: set, remaining: float) -> bool:
    """Every server that still holds changes is held (paused, signed out, offline), or has had its
    pass and holds only changes due after the timeout (a retry's backoff, a reference to identify)."""
    for sid, n in left.items():
        if not n or states.get(sid) in HELD:
            continue
        if sid not in seen:
            return False
        until = q.clock() + max(0.0, remaining)
        if any(r.status == SYNCING or (r.next_attempt_at or 0) <= until for r in q.rows(sid, (PENDING, SYNCING))):
            return False
    return True


def _report(q, ids, states, last_words, *, sent) -> int:
    """Per server: "all synced", or what is left and why. Exit 1 when something is left."""
    from ..queue import pause

    attention = False
    held = pause.paused_servers(q.folder)
    for sid in ids:
        rows = q.rows(sid, (PENDING, SYNCING, FAILED))
        waiting = [r for r in rows if r.status == PENDING]
        sending = [r for r in rows if r.status == SYNCING]
        failed = [r for r in rows if r.status == FAILED]
        parts = []
        if waiting:
            parts.append(f"{len(waiting)} pending ({_why(sid, waiting, states, last_words, held)})")
        if sending:  # claimed by another process that is still sending it (or died: its claim comes back)
            parts.append(f"{len(sending)} syncing (another Playback Sync is sending it now)")
        if failed:
            parts.append(f"{len(failed)} failed (see `playback-sync status`; `retry` or `clear` them)")
        attention = attention or bool(parts)
        print(f"{sid}: " + ("; ".join(parts) if parts else "all synced"))
    if sent:
        print(f"Sent {sent} change{'s' * (sent != 1)}.")
    return EXIT_ATTENTION if attention else EXIT_OK


def _why(sid, rows, states, last_words, held) -> str:
    from ..queue import pause

    state = states.get(sid)
    if state == "paused" or pause.ALL in held or sid in held:
        return "paused: run `playback-sync resume`"
    if state == "auth_required":
        return "needs sign-in: run `playback-sync login`"
    if state == "offline":
        words = last_words.get(sid, "")
        reason = words[words.index("(") + 1:-1] if "(" in words and words.endswith(")") else "it does not answer"
        return f"offline: {reason}"
    waiting = [r for r in rows if d.waiting_to_identify(r)]
    if waiting:
        return f"{len(waiting)} waiting to identify" + (f": {waiting[0].error_message}" if waiting[0].error_message else "")
    later = [r for r in rows if r.next_attempt_at]
    if later:
        first = min(r.next_attempt_at for r in later)
        err = next((r.error_message for r in later if r.error_message), "")
        return f"retried after {d.when(first)}" + (f": {err}" if err else "")
    return "not sent in time: run `playback-sync sync` again" if state else "the server was not reached"
