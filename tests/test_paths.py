"""paths: data folder precedence (argument > env > platformdirs) and private folders."""
import os
import stat

import pytest

from playbacksync import paths


@pytest.fixture
def home(tmp_path, monkeypatch):
    # platformdirs follows XDG_* on Linux: point them into the test folder.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.delenv(paths.DATA_DIR_ENV, raising=False)
    return tmp_path


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_default_data_dir_is_platform_user_data_folder(home):
    d = paths.data_dir()
    assert d == str(home / "xdg-data" / "playback-sync")
    assert os.path.isdir(d) and mode(d) == 0o700


def test_env_overrides_platform_and_argument_overrides_env(home, monkeypatch):
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(home / "from-env"))
    assert paths.data_dir() == str(home / "from-env")
    assert paths.data_dir(str(home / "from-arg")) == str(home / "from-arg")
    assert mode(home / "from-env") == 0o700 and mode(home / "from-arg") == 0o700


def test_created_folders_are_private_even_with_a_permissive_umask(home):
    old = os.umask(0o000)
    try:
        d = paths.data_dir(str(home / "a" / "b"))
    finally:
        os.umask(old)
    assert mode(d) == 0o700


def test_existing_folder_is_left_as_the_user_made_it(home):
    mine = home / "mine"
    mine.mkdir(mode=0o755)
    os.chmod(mine, 0o755)
    assert paths.data_dir(str(mine)) == str(mine)
    assert mode(mine) == 0o755


def test_config_and_state_dirs(home):
    assert paths.config_dir() == str(home / "xdg-config" / "playback-sync")
    assert paths.state_dir() == str(home / "xdg-state" / "playback-sync")
    assert mode(paths.config_dir()) == 0o700 and mode(paths.state_dir()) == 0o700


def test_user_folder_in_override_is_expanded(home, monkeypatch):
    monkeypatch.setenv("HOME", str(home))
    assert paths.data_dir("~/q") == str(home / "q")
