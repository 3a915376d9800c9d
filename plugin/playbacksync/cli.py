"""The ``playback-sync`` command.

Exit codes: 0 done; 1 done, but something needs the user (failed changes,
nothing identified, a server refused); 2 bad usage or settings; 3 the queue
cannot be used (storage); 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import logging
import logging.handlers
import os
import sys
from typing import List, Optional

from . import __version__

EXIT_OK, EXIT_ATTENTION, EXIT_USAGE, EXIT_STORAGE = 0, 1, 2, 3

log = logging.getLogger("playbacksync")


class _Redact(logging.Filter):
    """Scrubs tokens from every record before any handler writes it, and makes it valid Unicode."""

    def filter(self, record):
        from .fsnames import shown
        from .redact import redact

        record.msg = shown(redact(record.getMessage()))  # a file name that is not UTF-8 cannot break a log
        record.args = None
        return True


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Every log file it opens, the first and each one after a rollover, is 0600."""

    def _open(self):
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return open(fd, self.mode, encoding=self.encoding, errors=self.errors)


def setup_logging(verbose: bool) -> str:
    from .paths import state_dir

    folder = state_dir()
    path = os.path.join(folder, "playback-sync.log")
    handler = _PrivateRotatingFileHandler(path, maxBytes=1_000_000, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_Redact())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_playback_sync", False)]:
        root.removeHandler(old)  # main() may run more than once in one process (tests)
        old.close()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    handlers = [handler]
    if verbose:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        console.addFilter(_Redact())
        handlers.append(console)
    for h in handlers:
        h._playback_sync = True
        root.addHandler(h)
    try:
        os.chmod(path, 0o600)
    except OSError:
        pass
    return path


def _config_path(args) -> Optional[str]:
    return args.config or os.environ.get("PLAYBACK_SYNC_CONFIG") or None


def load_config(args):
    """The user's config; an absent default file is an empty config, an absent named one an error."""
    from .config import Config
    from .settings import load_config as load, default_config_path

    path = _config_path(args)
    if path is None:
        path = default_config_path()
        if not os.path.exists(path):
            log.info("no config file at %s: no servers configured", path)
            return Config()
    return load(path)


def _data_dir(args) -> Optional[str]:
    return args.data_dir or os.environ.get("PLAYBACK_SYNC_DATA_DIR") or None


def _open_queue(args, config):
    from .queue import SyncQueue

    q = SyncQueue(_data_dir(args), retention_days=config.sync.retention_days)
    if q.damage:
        print(f"playback-sync: {q.damage.message()}", file=sys.stderr)
    return q


# -- commands -----------------------------------------------------------------

def cmd_status(args) -> int:
    from .backends import make_backend
    from .backends.base import AuthError, BackendError
    from .redact import redact

    config = load_config(args)
    q = _open_queue(args, config)
    try:
        counts = q.counts()
        failed = q.get_failed_retryable()
        path = q.path
        damage = q.damage_reports()
    finally:
        q.close()
    servers = {}
    for server in config.servers:
        entry = {"type": server.type, "url": redact(server.url), "enabled": server.enabled,
                 "state": "disabled" if not server.enabled else "unchecked", "server": None, "error": None,
                 "counts": counts.get(server.id, {})}
        if server.enabled and not args.no_check:
            backend = None
            try:
                backend = make_backend(server)
                info = backend.check()
                entry["state"], entry["server"] = "online", {"name": info.name, "version": info.version}
            except AuthError as exc:
                entry["state"], entry["error"] = "auth_required", redact(str(exc))
            except BackendError as exc:
                entry["state"], entry["error"] = "offline", redact(str(exc))
            finally:
                if backend is not None:
                    backend.close()
        servers[server.id] = entry
    unknown = {sid: c for sid, c in counts.items() if sid not in servers}
    failed_rows = [{"id": r.id, "server": r.source_id, "item": r.media_item_id, "change": r.change_type,
                    "attempts": r.attempt_count, "error": r.error_message} for r in failed]
    if args.json:
        print(json.dumps({"queue": path, "servers": servers, "unconfigured_sources": unknown,
                          "failed": failed_rows, "damaged_files": [vars(d) for d in damage]}, indent=2))
    else:
        print(f"Queue: {path}")
        if not servers:
            print("No servers configured (run `playback-sync settings` or `playback-sync login`).")
        cols = ("pending", "syncing", "synced", "failed")
        rows = [(sid, e["type"], e["state"], *[str(e["counts"].get(c, 0)) for c in cols]) for sid, e in servers.items()]
        rows += [(sid, "?", "not configured", *[str(c.get(k, 0)) for k in cols]) for sid, c in unknown.items()]
        if rows:
            head = ("SERVER", "TYPE", "STATE", "PENDING", "SYNCING", "SYNCED", "FAILED")
            widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
            for r in [head] + rows:
                print("  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip())
        for sid, e in servers.items():
            if e["error"]:
                print(f"{sid}: {e['error']}")
        if failed_rows:
            print(f"{len(failed_rows)} failed change(s) (retry with `playback-sync retry`):")
            for r in failed_rows:
                print(f"  #{r['id']} {r['server']} item {r['item']} {r['change']}: {r['error']}")
        for d in damage:
            print(f"Damaged: {d.message()}. Delete {d.moved_to}* once you no longer need it.")
    states_bad = any(e["state"] in ("offline", "auth_required") for e in servers.values())
    lost = any(d.lost or d.unreadable_file for d in damage)  # (damaged-state rows are failed rows)
    return EXIT_ATTENTION if failed_rows or states_bad or lost else EXIT_OK


def _drain(args, config, timeout: float) -> int:
    """Run a worker until the queue has nothing due for the configured servers, or timeout."""
    import time

    from .app import SyncService

    service = SyncService(config, _data_dir(args))
    service.start()
    service.wait_ready(10)
    ids = {s.id for s in config.enabled_servers()}
    deadline = time.monotonic() + timeout
    try:
        service.worker.process_now()
        while time.monotonic() < deadline:
            counts = service.queue.counts()
            waiting = sum(counts.get(sid, {}).get(st, 0) for sid in ids for st in ("pending", "syncing"))
            states = service.worker.server_states()
            stuck = all(states.get(sid) in ("auth_required", "paused") for sid in ids
                        if counts.get(sid, {}).get("pending") or counts.get(sid, {}).get("syncing"))
            if not waiting or stuck:
                break
            time.sleep(0.1)
    finally:
        service.stop(3.0)
    q = _open_queue(args, config)
    try:
        counts = q.counts()
    finally:
        q.close()
    left = {sid: {k: v for k, v in counts.get(sid, {}).items() if k in ("pending", "syncing", "failed") and v}
            for sid in ids}
    for sid, c in sorted(left.items()):
        print(f"{sid}: " + (", ".join(f"{v} {k}" for k, v in c.items()) if c else "all synced"))
    return EXIT_ATTENTION if any(left.values()) else EXIT_OK


def cmd_retry(args) -> int:
    config = load_config(args)
    q = _open_queue(args, config)
    try:
        n = q.retry_failed(args.server)
    finally:
        q.close()
    print(f"{n} failed change(s) queued again")
    if args.no_sync or not config.enabled_servers():
        return EXIT_OK
    return _drain(args, config, args.timeout)


def cmd_sync(args) -> int:
    config = load_config(args)
    return _drain(args, config, args.timeout)


def _media_ref(target: str):
    from .tracker.events import MediaRef

    if "://" not in target:
        target = os.path.abspath(target)
    return MediaRef(path=target, title=os.path.basename(target))


def _shown_target(target: str) -> str:
    """A target as output may show it: no user info (a password), tokens redacted."""
    from urllib.parse import urlsplit, urlunsplit

    from .redact import redact

    if "://" in target:
        try:
            p = urlsplit(target)
            target = urlunsplit((p.scheme, p.netloc.rpartition("@")[2], p.path, p.query, p.fragment))
        except ValueError:
            pass
    return redact(target)


def cmd_identify(args) -> int:
    from .backends import make_backend
    from .identify import Identifier, ItemIndex, identify_report

    config = load_config(args)
    backends = {s.id: make_backend(s) for s in config.enabled_servers()}
    index = ItemIndex.open_or_temporary(_data_dir(args))
    if index.problem:
        print(f"playback-sync: {index.problem}", file=sys.stderr)
    identifier = Identifier(config, backends, index)
    results = {}
    try:
        for target in args.targets:
            media = _media_ref(target)
            if args.provider_id:
                media = type(media)(path=media.path, title=media.title, provider_ids=dict(args.provider_id))
            results[target] = identifier.identify(media)
    finally:
        if identifier.close(0.5):  # a refresh still winding down keeps its connection
            index.close()
        for b in backends.values():
            b.close()
    if args.json:
        print(json.dumps({_shown_target(t): {sid: {"item_id": m.item_id, "method": m.method, "reason": m.reason}
                              for sid, m in r.items()} for t, r in results.items()}, indent=2))
    else:
        if not backends:
            print("No servers configured: nothing can be identified.")
        for target, r in results.items():
            print(_shown_target(target))
            print(identify_report(r))
    matched = all(any(m.item_id for m in r.values()) for r in results.values())
    return EXIT_OK if matched else EXIT_ATTENTION


def cmd_play(args, mpv_args: List[str]) -> int:
    from .hosts.mpv_host import play

    return play(args, mpv_args)


def cmd_settings(args) -> int:
    from .settings import default_config_path
    from .settings.dialog import run_dialog

    return run_dialog(_config_path(args) or default_config_path())


def cmd_login(args) -> int:
    from .settings import default_config_path
    from .settings.login import run_login

    return run_login(args.server_type, _config_path(args) or default_config_path(),
                     url=args.url, username=args.username, server_id=args.server_id)


def _provider_id(text: str):
    kind, sep, value = text.partition("=")
    if not sep or not kind.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KIND=ID (e.g. imdb=tt0133093)")
    return kind.strip(), value.strip()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="playback-sync", description=(
        "Keeps Plex, Jellyfin and Emby up to date with what you watch in mpv."))
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--config", metavar="FILE", help="config file (default: $PLAYBACK_SYNC_CONFIG or the user config folder)")
    p.add_argument("--data-dir", metavar="DIR", help="where the queue lives (default: $PLAYBACK_SYNC_DATA_DIR or the user data folder)")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug details, also to stderr")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    s = sub.add_parser("play", help="play files or URLs in mpv and sync what you watch",
                       description="Play TARGETs in mpv with your mpv config; options mpv knows (e.g. --vo=null --fs) pass through.")
    s.add_argument("targets", nargs="+", metavar="TARGET", help="file, folder, playlist or URL")
    s.set_defaults(func=cmd_play, passthrough=True)

    s = sub.add_parser("status", help="show the queue and each server's state")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--no-check", action="store_true", help="don't contact the servers")
    s.set_defaults(func=cmd_status)

    s = sub.add_parser("retry", help="queue failed changes again and sync them now")
    s.add_argument("--server", metavar="ID", help="only this server")
    s.add_argument("--no-sync", action="store_true", help="only queue them; the next player run sends them")
    s.add_argument("--timeout", type=float, default=30.0, help="seconds to try (default 30)")
    s.set_defaults(func=cmd_retry)

    s = sub.add_parser("sync", help="send what is queued now, without playing")
    s.add_argument("--timeout", type=float, default=30.0, help="seconds to try (default 30)")
    s.set_defaults(func=cmd_sync)

    s = sub.add_parser("identify", help="show which item each server has for a file or URL")
    s.add_argument("targets", nargs="+", metavar="TARGET")
    s.add_argument("--provider-id", action="append", metavar="KIND=ID", default=[], type=_provider_id,
                   help="also match on a provider id, e.g. imdb=tt0133093")
    s.add_argument("--json", action="store_true", help="per server: item_id (or null), method, reason")
    s.set_defaults(func=cmd_identify)

    s = sub.add_parser("settings", help="open the settings dialog")
    s.set_defaults(func=cmd_settings)

    s = sub.add_parser("login", help="sign in to a server from the terminal and save the token")
    s.add_argument("server_type", choices=("jellyfin", "emby", "plex"))
    s.add_argument("--url", help="server URL")
    s.add_argument("--username", help="user name (Jellyfin, Emby)")
    s.add_argument("--server-id", help="name for this server in the config")
    s.set_defaults(func=cmd_login)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, "passthrough", False):
        parser.error("unrecognized arguments: " + " ".join(rest))
    from .queue import QueueError
    from .settings import ConfigError

    try:
        setup_logging(args.verbose)
        if getattr(args, "passthrough", False):
            return args.func(args, rest)
        return args.func(args)
    except ConfigError as exc:
        print(f"playback-sync: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except QueueError as exc:
        print(f"playback-sync: {exc}", file=sys.stderr)
        return EXIT_STORAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
