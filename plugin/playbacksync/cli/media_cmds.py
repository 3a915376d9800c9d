"""Commands about media: play (mpv) and identify."""
from __future__ import annotations

import json
import os
import sys
from typing import List

from . import describe as d
from .library import read_new_libraries
from .common import EXIT_ATTENTION, EXIT_OK, data_dir_arg, load_config


def cmd_play(args, mpv_args: List[str]) -> int:
    from ..hosts.mpv import play

    return play(args, mpv_args)


def media_ref(target: str):
    from ..tracker.events import MediaRef

    if "://" not in target:
        target = os.path.abspath(target)
    return MediaRef(path=target, title=os.path.basename(target))


def shown_target(target: str) -> str:
    """A target as output may show it: no user info (a password), tokens redacted."""
    from urllib.parse import urlsplit, urlunsplit

    from ..redact import redact

    if "://" in target:
        try:
            p = urlsplit(target)
            target = urlunsplit((p.scheme, p.netloc.rpartition("@")[2], p.path, p.query, p.fragment))
        except ValueError:
            pass
    return redact(target)


def cmd_identify(args) -> int:
    from ..backends import make_backend
    from ..identify import Identifier, ItemIndex, identify_report
    from ..paths import data_dir

    config = load_config(args)
    backends = {s.id: make_backend(s) for s in config.enabled_servers()}
    index = ItemIndex.open_or_temporary(data_dir(data_dir_arg(args)))
    if index.problem:
        print(f"playback-sync: {index.problem}", file=sys.stderr)
    identifier = Identifier(config, backends, index)
    results, titles = {}, {}
    try:
        read_new_libraries(index, backends, list(backends), say_errors=False)
        for target in args.targets:
            media = media_ref(target)
            if args.provider_id:
                media = type(media)(path=media.path, title=media.title, provider_ids=dict(args.provider_id))
            results[target] = identifier.identify(media, confirm=True)  # what a write would use
            titles[target] = {sid: _title(index, sid, m.item_id) for sid, m in results[target].items()}
    finally:
        if identifier.close(0.5):  # a refresh still winding down keeps its connection
            index.close()
        for b in backends.values():
            b.close()
    if args.json:
        print(json.dumps({shown_target(t): {sid: {"item_id": m.item_id, "title": titles[t][sid], "method": m.method,
                                                  "reason": m.reason} for sid, m in r.items()}
                          for t, r in results.items()}, indent=2))
    else:
        if not backends:
            print("No servers configured: nothing can be identified.")
        for target, r in results.items():
            print(shown_target(target))
            lines = identify_report(r).splitlines()
            for (sid, m), line in zip(r.items(), lines):
                title = titles[target][sid]
                if title and m.item_id is not None:
                    line = line.replace(f"item {m.item_id}", f"{title} (item {m.item_id})", 1)
                print(line)
    matched = all(any(m.item_id for m in r.values()) for r in results.values())
    return EXIT_OK if matched else EXIT_ATTENTION


def _title(index, server_id: str, item_id):
    if item_id is None:
        return None
    try:
        item = index.get(server_id, item_id)
    except Exception:
        return None
    return d.pretty_title(item.name or item.path) if item is not None and (item.name or item.path) else None
