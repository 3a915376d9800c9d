"""Which settings file and data folder a run uses: one rule for the CLI and every host.

    config_file(named)        # --config FILE, else $PLAYBACK_SYNC_CONFIG, else the default file
    load_config(named)        # that file as a Config; an absent *default* file is an empty Config
    data_dir_override(named)  # --data-dir DIR, else $PLAYBACK_SYNC_DATA_DIR, else None (the default)
    Locations.from_args(args) # the same, from the command line's --config / --data-dir

A file the user named (option or environment) must exist; the default one may
not yet (no servers configured). ``paths.data_dir(override)`` makes the folder.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Optional

from ..paths import DATA_DIR_ENV
from .config_file import ENV_CONFIG, default_config_path

log = logging.getLogger(__name__)


def named_config(named: Optional[str] = None) -> Optional[str]:
    """The config file the user named (``--config`` beats $PLAYBACK_SYNC_CONFIG), or None."""
    return named or os.environ.get(ENV_CONFIG) or None


def config_file(named: Optional[str] = None) -> str:
    """The config file this run reads and the settings dialog writes."""
    return named_config(named) or default_config_path()


def load_config(named: Optional[str] = None):
    """The user's config; an absent default file is an empty config, an absent named one an error."""
    from ..config import Config
    from .config_file import load_config as load

    path = named_config(named)
    if path is None:
        path = default_config_path()
        if not os.path.exists(path):
            log.info("no config file at %s: no servers configured", path)
            return Config()
    return load(path)


def data_dir_override(named: Optional[str] = None) -> Optional[str]:
    """The data folder the user named (``--data-dir`` beats $PLAYBACK_SYNC_DATA_DIR), or None."""
    return named or os.environ.get(DATA_DIR_ENV) or None


@dataclass(frozen=True)
class Locations:
    """What the command line named: ``config`` (file) and ``data_dir`` (folder), each possibly None."""

    config: Optional[str] = None
    data_dir: Optional[str] = None

    @classmethod
    def from_args(cls, args) -> "Locations":
        return cls(config=getattr(args, "config", None) or None, data_dir=getattr(args, "data_dir", None) or None)

    def config_file(self) -> str:
        return config_file(self.config)

    def named_config(self) -> Optional[str]:
        return named_config(self.config)

    def load_config(self):
        return load_config(self.config)

    def data_dir_override(self) -> Optional[str]:
        return data_dir_override(self.data_dir)
