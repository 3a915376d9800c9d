"""Settings: one schema for both hosts, the mpv config file, Kodi's flat settings, dialogs.

    load_config(path) -> Config        # raises ConfigError naming file, key and fix
    save_config(config, path)          # atomic, mode 0600
    default_config_path()              # $PLAYBACK_SYNC_CONFIG or config.toml in the user config folder
    config_from_flat(flat) -> Config   # Kodi's flat setting values
"""
from .config_file import (ConfigError, Problem, config_from_dict, config_to_dict, default_config_path,
                          load_config, save_config)
from .schema import kodi_setting_ids, mask_token



def config_from_flat(flat):
    """Kodi's flat setting values -> Config (see ``kodi_settings.config_from_flat``)."""
    from .kodi_settings import config_from_flat as convert  # lazy: keeps `python -m …kodi_settings` clean

    return convert(flat)


__all__ = ["ConfigError", "Problem", "config_from_dict", "config_to_dict", "config_from_flat",
           "default_config_path", "kodi_setting_ids", "load_config", "mask_token", "save_config"]
