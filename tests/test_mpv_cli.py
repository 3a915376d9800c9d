"""`playback-sync play` as a user runs it: a subprocess, a config file, the fake Jellyfin over HTTP."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("mpv")

from playbacksync.config import Config, PathMapping, ServerConfig  # noqa: E402
from playbacksync.settings import save_config  # noqa: E402
from tests.fakes.base import fail_on_spec_violations  # noqa: F401,E402
from tests.fakes.jellyfin import JellyfinFake  # noqa: E402
from tests.media import make_clip  # noqa: E402

pytestmark = pytest.mark.mpv

REMOTE = "/srv/media"
TICKS = 10_000_000
# Long enough that a loaded machine never reaches its end before the Ctrl-C test interrupts it
# (a 10 s clip did: the viewing ended, was marked watched, and play exited 0).
CLIP_S = 40


@pytest.fixture
def setup(tmp_path):
    clips = tmp_path / "clips"
    clip = make_clip(clips, CLIP_S, name="movie")
    with JellyfinFake(version="10.11.11") as fake:
        uid = fake.add_user("alice", "pass")
        server = ServerConfig(id="home", type="jellyfin", url=fake.url, token=fake.issue_token(uid), user_id=uid,
                              device_id="dev-1", path_mappings=(PathMapping(str(clips), REMOTE),),
                              connect_timeout=1.0, read_timeout=2.0)
        item = fake.add_item("Movie", path=f"{REMOTE}/movie.mp4", runtime_s=float(CLIP_S))
        config = tmp_path / "config.toml"
        save_config(Config(servers=(server,)), str(config))
        (tmp_path / "mpv").mkdir()
        env = dict(os.environ, PLAYBACK_SYNC_DATA_DIR=str(tmp_path / "data"),
                   PLAYBACK_SYNC_MPV_CONFIG_DIR=str(tmp_path / "mpv"),
                   XDG_STATE_HOME=str(tmp_path / "state"), XDG_CONFIG_HOME=str(tmp_path / "cfg"))
        yield {"fake": fake, "uid": uid, "item": item, "clip": clip, "config": str(config), "env": env}


def _as_from_a_terminal():
    """In the child: Ctrl+C's default, as a shell gives a command in the foreground. A suite run in
    the background (`make test &`) has SIGINT ignored, and a child that inherits SIG_IGN keeps it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli(setup, *args, **kw):
    return [sys.executable, "-m", "playbacksync.cli", "--config", setup["config"], *args]


def sync_until(setup, check, timeout=30):
    """The queue keeps what the player could not send before it exited; `playback-sync sync` sends it."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the fake never got the change"
        subprocess.run(cli(setup, "sync", "--timeout", "5"), env=setup["env"], capture_output=True, timeout=60)


def test_play_to_the_end_then_the_server_has_it_watched(setup):
    done = subprocess.run(cli(setup, "play", str(setup["clip"]), "--vo=null", "--ao=null", "--speed=100"),
                          env=setup["env"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    fake = setup["fake"]
    sync_until(setup, lambda: fake.user_data(setup["uid"], setup["item"]).played)
    status = subprocess.run(cli(setup, "status", "--json", "--no-check"), env=setup["env"],
                            capture_output=True, text=True, timeout=60)
    counts = json.loads(status.stdout)["servers"]["home"]["counts"]
    assert counts.get("synced") == 1 and not counts.get("pending") and not counts.get("failed")


def _play_until_playing(setup) -> subprocess.Popen:
    """`play -v` started as from a terminal, once the host logged "playing …" (at file-loaded)."""
    proc = subprocess.Popen(cli(setup, "-v", "play", str(setup["clip"]), "--vo=null", "--ao=null"),
                            env=setup["env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_as_from_a_terminal)
    deadline = time.monotonic() + 30
    line = ""
    try:
        while "playing" not in line:
            assert time.monotonic() < deadline and proc.poll() is None
            line = proc.stderr.readline()
    except BaseException:
        proc.kill()
        raise
    return proc


def test_ctrl_c_mid_file_keeps_the_position(setup):
    proc = _play_until_playing(setup)
    try:
        time.sleep(3.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    fake = setup["fake"]
    sync_until(setup, lambda: fake.user_data(setup["uid"], setup["item"]).position_ticks > 0)
    data = fake.user_data(setup["uid"], setup["item"])
    assert not data.played
    # At least the 3 s it surely played; well before the end (the viewing was cut, not finished).
    assert 2.5 * TICKS <= data.position_ticks <= (CLIP_S - 10) * TICKS


def _interrupt_a_thread_other_than_main(pid: int) -> None:
    """SIGINT to one of the process's other threads (tgkill), as the kernel may deliver a Ctrl+C."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid)
    assert tids, "the player has no other threads"
    assert libc.syscall(234, pid, tids[-1], signal.SIGINT) == 0, ctypes.get_errno()  # 234: tgkill on x86-64


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="tgkill's syscall number is x86-64's")
def test_ctrl_c_delivered_to_another_thread_still_quits_at_once(setup):
    proc = _play_until_playing(setup)
    try:
        _interrupt_a_thread_other_than_main(proc.pid)
        # Well before the clip's end: the main thread must notice the signal though it did not get it.
        _, err = proc.communicate(timeout=CLIP_S / 2)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err


def test_an_unknown_mpv_option_is_a_usage_error(setup):
    done = subprocess.run(cli(setup, "play", str(setup["clip"]), "--vo=null", "--no-such-thing=1"),
                          env=setup["env"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "mpv refused --no-such-thing=1" in done.stderr


def test_a_broken_config_stops_the_player_with_a_clear_message(setup, tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("[[servers]\nid = \n")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "playbacksync.cli", "--config", str(broken), "play",
                           str(setup["clip"]), "--vo=null", "--ao=null"],
                          env=setup["env"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert str(broken) in done.stderr
    assert time.monotonic() - started < CLIP_S - 10  # the clip was not played through
