"""settings.locate: the one rule for which config file and data folder a run uses."""
import argparse

import pytest

from playbacksync.settings import ConfigError
from playbacksync.settings.locate import Locations, config_file, data_dir_override, load_config, named_config


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.delenv("PLAYBACK_SYNC_CONFIG", raising=False)
    monkeypatch.delenv("PLAYBACK_SYNC_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return monkeypatch


def test_option_beats_environment_beats_default(env, tmp_path):
    default = str(tmp_path / "xdg" / "playback-sync" / "config.toml")
    assert named_config() is None and config_file() == default
    env.setenv("PLAYBACK_SYNC_CONFIG", str(tmp_path / "env.toml"))
    assert config_file() == str(tmp_path / "env.toml")
    assert config_file(str(tmp_path / "opt.toml")) == str(tmp_path / "opt.toml")


def test_data_dir_option_beats_environment_and_none_means_default(env, tmp_path):
    assert data_dir_override() is None
    env.setenv("PLAYBACK_SYNC_DATA_DIR", str(tmp_path / "d1"))
    assert data_dir_override() == str(tmp_path / "d1")
    assert data_dir_override(str(tmp_path / "d2")) == str(tmp_path / "d2")


def test_absent_default_file_is_an_empty_config_but_a_named_one_is_an_error(env, tmp_path):
    assert load_config().servers == ()
    with pytest.raises(ConfigError):
        load_config(str(tmp_path / "missing.toml"))
    env.setenv("PLAYBACK_SYNC_CONFIG", str(tmp_path / "missing-too.toml"))
    with pytest.raises(ConfigError):
        load_config()


def test_locations_from_command_line_args(env, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[sync]\nprogress_interval = 12\n")
    where = Locations.from_args(argparse.Namespace(config=str(config), data_dir=str(tmp_path / "data")))
    assert where.load_config().sync.progress_interval == 12
    assert where.data_dir_override() == str(tmp_path / "data")
    assert Locations.from_args(argparse.Namespace()).config_file() == config_file()


def test_cli_and_hosts_use_the_one_rule():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "plugin" / "playbacksync" / "hosts"
    for source in root.rglob("*.py"):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names = {a.name for a in node.names}
                assert node.module not in ("cli", "playbacksync.cli") and not (
                    node.module is None and "cli" in names) and "cli" not in names, f"{source} imports cli"
