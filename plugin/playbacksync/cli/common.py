"""What every command shares: exit codes, the config and data folder, the queue, server names."""
from __future__ import annotations

import sys
from typing import List, Optional

EXIT_OK, EXIT_ATTENTION, EXIT_USAGE, EXIT_STORAGE = 0, 1, 2, 3


class UsageError(Exception):
    """Bad usage found after parsing (an unknown server name, no terminal to confirm): exit 2."""


def config_path(args) -> Optional[str]:
    """The config file named by --config or $PLAYBACK_SYNC_CONFIG, else None (the default one)."""
    from ..settings.locate import named_config

    return named_config(getattr(args, "config", None))


def config_file(args) -> str:
    """The config file this command reads and writes (settings.locate's rule)."""
    from ..settings.locate import config_file as locate

    return locate(getattr(args, "config", None))


def load_config(args):
    """The user's config; an absent default file is an empty config, an absent named one an error."""
    from ..settings.locate import load_config as load

    return load(getattr(args, "config", None))


def data_dir_arg(args) -> Optional[str]:
    """The data folder named by --data-dir or $PLAYBACK_SYNC_DATA_DIR, else None (the default one)."""
    from ..settings.locate import data_dir_override

    return data_dir_override(getattr(args, "data_dir", None))


def data_folder(args) -> str:
    """The data folder itself (created, private)."""
    from ..paths import data_dir

    return data_dir(data_dir_arg(args))


def open_queue(args, config):
    from ..queue import SyncQueue

    q = SyncQueue(data_dir_arg(args), retention_days=config.sync.retention_days)
    damage = getattr(q, "damage", None)  # record-first queue: how many rows were saved and lost
    if damage is not None:
        print(f"playback-sync: {damage.message()}", file=sys.stderr)
    elif q.moved_aside:
        print(f"playback-sync: the queue file was damaged: moved it to {q.moved_aside} and started a new "
              "queue", file=sys.stderr)
    return q


def chosen_servers(config, name: Optional[str], *, known: List[str] = ()) -> Optional[List[str]]:
    """--server NAME checked against the config (and ids the queue still holds): None means all.

    An unknown name is a usage error (exit 2), never "0 changes".
    """
    if name is None:
        return None
    ids = [s.id for s in config.servers]
    if name in ids or name in known:
        return [name]
    have = ", ".join(ids) if ids else "none is configured"
    raise UsageError(f"no server named {name!r} (configured: {have})")
