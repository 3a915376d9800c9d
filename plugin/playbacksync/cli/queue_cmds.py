"""Commands about what is queued: status, history, retry, clear, pause, resume."""
from __future__ import annotations

import json
import re
import sys
import time
from contextlib import contextmanager
from typing import Dict, List, Optional

from ..changes import APPLIED, FAILED, PENDING, SUPERSEDED, SYNCED, SYNCING
from . import describe as d
from .common import (EXIT_ATTENTION, EXIT_OK, UsageError, chosen_servers, data_folder, load_config,
                     open_queue)


@contextmanager
def _queue_view(args):
    """(config, queue, names) for a command that reads the queue and shows titles; closed after."""
    config = load_config(args)
    q = open_queue(args, config)
    names = d.IndexNames(q.folder)
    try:
        yield config, q, names
    finally:
        names.close()
        q.close()


def _table(rows, head) -> List[str]:
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    return ["  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip() for r in [head] + rows]


def _check_servers(config, no_check: bool) -> Dict[str, Dict]:
    from ..backends import make_backend
    from ..backends.base import AuthError, BackendError, WrongUserToken
    from ..redact import redact

    servers = {}
    for server in config.servers:
        entry = {"type": server.type, "url": redact(server.url), "enabled": server.enabled,
                 "state": "disabled" if not server.enabled else "unchecked", "server": None, "error": None}
        if server.enabled and not no_check:
            backend = None
            try:
                backend = make_backend(server)
                info = backend.check()
                entry["state"], entry["server"] = "online", {"name": info.name, "version": info.version}
            except WrongUserToken as exc:  # the message names both users
                entry["state"], entry["error"] = "auth_required", redact(str(exc))
            except AuthError:
                entry["state"], entry["error"] = "auth_required", "refused the saved sign-in: run `playback-sync login`"
            except (BackendError, ValueError) as exc:
                entry["state"], entry["error"] = "offline", redact(str(exc))
            finally:
                if backend is not None:
                    backend.close()
        servers[server.id] = entry
    return servers


def cmd_status(args) -> int:
    from ..queue import pause

    with _queue_view(args) as (config, q, names):
        folder = q.folder
        counts = q.counts()
        open_rows = q.rows(statuses=(PENDING, SYNCING, FAILED))
        path = q.path
        servers = _check_servers(config, args.no_check)
        held = pause.paused_servers(folder)
        for sid, entry in servers.items():
            entry["counts"] = counts.get(sid, {})
            entry["paused"] = pause.ALL in held or sid in held
        unknown = {sid: c for sid, c in counts.items() if sid not in servers}
        pending = [r for r in open_rows if r.status in (PENDING, SYNCING) and not d.waiting_to_identify(r)]
        waiting = [r for r in open_rows if d.waiting_to_identify(r)]
        failed = [r for r in open_rows if r.status == FAILED]
        lists = {k: [d.row_json(r, names) for r in rows]
                 for k, rows in (("pending", pending), ("waiting_to_identify", waiting), ("failed", failed))}
        for r in lists["waiting_to_identify"]:
            r["reason"] = r["error"] or "waiting to identify: not tried yet"
        damage = list(getattr(q, "damage_reports", list)())  # damaged files moved aside and still kept
    if args.json:
        from ..cli_mpv import script_status

        print(json.dumps({"queue": path, "servers": servers, "unconfigured_sources": unknown, **lists,
                          "damaged_files": [vars(x) for x in damage], "mpv_script": script_status()}, indent=2))
    else:
        _print_status(path, servers, unknown, lists)
        for x in damage:
            print(f"Damaged: {x.message()}. Delete {x.moved_to}* once you no longer need it.")
    states_bad = any(e["state"] in ("offline", "auth_required") for e in servers.values())
    lost = any(x.lost or x.unreadable_file for x in damage)
    return EXIT_ATTENTION if lists["failed"] or states_bad or lost else EXIT_OK


SHOWN = 20  # changes listed per group; --json lists all


def _print_status(path, servers, unknown, lists) -> None:
    from ..cli_mpv import status_lines

    print(f"Queue: {path}")
    print("\n".join(status_lines()))
    if not servers:
        print("No servers configured (run `playback-sync settings` or `playback-sync login`).")
    cols = ("pending", "syncing", "synced", "failed")
    rows = [(sid, e["type"], e["state"] + (", paused" if e["paused"] else ""),
             *[str(e["counts"].get(c, 0)) for c in cols]) for sid, e in servers.items()]
    rows += [(sid, "?", "not configured", *[str(c.get(k, 0)) for k in cols]) for sid, c in unknown.items()]
    if rows:
        for line in _table(rows, ("SERVER", "TYPE", "STATE", "PENDING", "SYNCING", "SYNCED", "FAILED")):
            print(line)
    for sid, e in servers.items():
        if e["error"]:
            print(f"{sid}: {e['error']}")
        if e["paused"]:
            print(f"{sid}: paused: changes are kept and sent after `playback-sync resume`")
    headings = {"pending": "waiting to be sent", "waiting_to_identify": "waiting to identify",
                "failed": "failed (retry with `playback-sync retry`, or drop with `playback-sync clear`)"}
    for key, heading in headings.items():
        if lists[key]:
            print(f"{len(lists[key])} {heading}:")
            for r in lists[key][:SHOWN]:
                line = f"  #{r['id']} {r['title']}: {r['change']} → {r['server']}"
                why = r.get("reason") or r["error"]
                if why and key != "pending":
                    line += f" — {why}"
                print(line)
            if len(lists[key]) > SHOWN:
                print(f"  … and {len(lists[key]) - SHOWN} more (all of them: `playback-sync status --json`)")


# -- history ----------------------------------------------------------------------

_SPAN = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: Optional[float] = None) -> float:
    """"2d", "12h", "30m", "1w", a date "2026-12-01" or "2026-12-01 18:30" -> epoch seconds."""
    import argparse

    now = time.time() if now is None else now
    t = text.strip().lower()
    m = _SPAN.match(t)
    if m:
        return now - float(m[1]) * _UNIT[m[2]]
    if t in ("today", "yesterday"):
        lt = time.localtime(now)
        midnight = time.mktime((lt.tm_year, lt.tm_mon, lt.tm_mday, 0, 0, 0, 0, 0, -1))
        return midnight - (86400 if t == "yesterday" else 0)
    for fmt in ("%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return time.mktime(time.strptime(t.replace("t", " "), fmt))
        except ValueError:
            pass
    raise argparse.ArgumentTypeError(f"{text!r} is not a time: use e.g. 2d, 12h, 30m, yesterday or 2026-12-01")


def _answer(row) -> str:
    if row.status == FAILED:
        return f"failed: {row.error_message or 'no answer'}"
    if row.resolution == SUPERSEDED:
        return f"not sent: {row.error_message or 'the server already had a newer state'}"
    if row.resolution == APPLIED:
        return "saved"
    return row.resolution or row.status


def cmd_history(args) -> int:
    with _queue_view(args) as (config, q, names):
        chosen = chosen_servers(config, args.server, known=list(q.counts()))
        rows = q.rows(chosen[0] if chosen else None, (SYNCED, FAILED))
        rows = [r for r in rows if (r.updated_at or r.created_at or 0) >= (args.since or 0)]
        rows.sort(key=lambda r: (r.updated_at or 0, r.id))
        out = [dict(d.row_json(r, names), answer=_answer(r)) for r in rows]
    if args.json:
        print(json.dumps({"retention_days": config.sync.retention_days, "changes": out}, indent=2))
        return EXIT_OK
    if not out:
        print(f"Nothing sent in the last {config.sync.retention_days:g} days (history is kept that long: "
              "retention_days)." if not args.since else "Nothing sent in that time.")
        return EXIT_OK
    table = [(d.when(r["updated_at"]), r["server"], r["title"], r["change"], r["answer"]) for r in out]
    for line in _table(table, ("WHEN", "SERVER", "TITLE", "CHANGE", "ANSWER")):
        print(line)
    return EXIT_OK


# -- retry and clear -------------------------------------------------------------------

def cmd_retry(args) -> int:
    from .sync_cmd import drain

    config = load_config(args)
    q = open_queue(args, config)
    try:
        chosen = chosen_servers(config, args.server, known=list(q.counts()))
        n = q.retry_failed(chosen[0] if chosen else None)
    finally:
        q.close()
    print(f"{n} failed change{'s' * (n != 1)} queued again" if n else "No failed changes to retry.")
    if args.no_sync or not config.enabled_servers():
        return EXIT_OK  # else: send now, failed-again ones and any waiting out a backoff
    return drain(args, config, args.timeout)


def _confirm(question: str, yes: bool) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError("clear asks before it drops changes, and there is no terminal to ask on: add --yes")
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


def cmd_clear(args) -> int:
    with _queue_view(args) as (config, q, names):
        chosen = chosen_servers(config, args.server, known=list(q.counts()))
        failed = q.rows(chosen[0] if chosen else None, (FAILED,))
        if args.ids:
            have = {r.id for r in failed}
            missing = [i for i in args.ids if i not in have]
            if missing:
                where = f" on {chosen[0]}" if chosen else ""
                raise UsageError("no failed change " + ", ".join(f"#{i}" for i in missing) + where +
                                 " (see `playback-sync status`)")
            failed = [r for r in failed if r.id in set(args.ids)]
        if not failed:
            print("No failed changes to clear.")
            return EXIT_OK
        lines = [f"  #{r.id} {d.title_of(r, names)}: {d.change_words(r)} → {r.source_id}" for r in failed]
        print(f"{len(failed)} failed change{'s' * (len(failed) != 1)}:")
        print("\n".join(lines))
        if not _confirm("Drop them? They will not be sent.", args.yes):
            print("Nothing dropped.")
            return EXIT_OK
        n = q.clear_failed(chosen[0] if chosen else None, ids=[r.id for r in failed])
    print(f"Dropped {n} failed change{'s' * (n != 1)}." +
          ("" if n == len(failed) else f" ({len(failed) - n} had already been retried or cleared.)"))
    return EXIT_OK


# -- pause and resume -----------------------------------------------------------------

def _set_pause(args, paused: bool) -> int:
    from ..queue import pause

    config = load_config(args)
    chosen = chosen_servers(config, args.server)
    ids = [s.id for s in config.servers]
    held = pause.set_paused(data_folder(args), chosen[0] if chosen else None, paused, all_servers=ids)
    target = chosen[0] if chosen else "every server"
    if paused:
        print(f"Paused syncing to {target}: changes are still recorded, and sent after "
              f"`playback-sync resume{' --server ' + chosen[0] if chosen else ''}`.")
    else:
        still = sorted(ids if pause.ALL in held else held)
        print(f"Resumed syncing to {target}." + (f" Still paused: {', '.join(still)}." if still else ""))
    return EXIT_OK


def cmd_pause(args) -> int:
    return _set_pause(args, True)


def cmd_resume(args) -> int:
    return _set_pause(args, False)
