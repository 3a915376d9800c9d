"""The installed script with Debian's real `mpv` binary: a throwaway HOME where `playback-sync install mpv`
ran, mpv started as a user would (no `playback-sync play`), and the agent it starts reaching the fake
Jellyfin over HTTP. Each test waits on the server's or the processes' state, never on a fixed sleep."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fakes.jellyfin import JellyfinFake
from tests.fakes.mediabrowser import TICKS_PER_SECOND
from tests.media import make_clip

jsonipc = pytest.importorskip("python_mpv_jsonipc")
pytestmark = [pytest.mark.mpv, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("mpv") is None, reason="Debian's mpv binary is not installed")]

REMOTE = "/srv/media/videos"
CLI = [sys.executable, "-m", "playbacksync.cli"]


def wait_for(check, timeout=40.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("attach-clips")
    return {"short": make_clip(folder, 6, name="short", size="160x120"),
            "long": make_clip(folder, 30, name="long", size="160x120"),
            "other": make_clip(folder, 12, name="other", size="160x120")}


class World:
    """A user's machine: HOME with the script installed, a config naming the fake, mpv to start."""

    def __init__(self, tmp_path, fake, clip_dir, install=True, drain=5, progress=2):
        self.tmp = tmp_path
        self.fake = fake
        self.home = tmp_path / "home"
        self.home.mkdir()
        self.runtime = tmp_path / "run"
        self.runtime.mkdir(mode=0o700)
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("XDG_", "PLAYBACK_SYNC_", "MPV_"))}
        self.env.update(HOME=str(self.home), XDG_RUNTIME_DIR=str(self.runtime), PYTHONPATH=str(
            Path(__file__).resolve().parent.parent / "plugin"))
        self.uid = fake.add_user("alice", "pass")
        token = fake.issue_token(self.uid)
        self.items = {name: fake.add_item(name.title(), path=f"{REMOTE}/{name}.mp4", runtime_s=secs)
                      for name, secs in (("short", 6), ("long", 30), ("other", 12))}
        config = self.home / ".config" / "playback-sync" / "config.toml"
        config.parent.mkdir(parents=True)
        config.write_text(f"""
[sync]
progress_interval = {progress}
agent_drain_seconds = {drain}

[[servers]]
id = "jellyfin"
type = "jellyfin"
url = "{fake.url}"
token = "{token}"
user_id = "{self.uid}"
device_id = "dev-1"
connect_timeout = 1
read_timeout = 2
path_mappings = [{{ local = "{clip_dir}", remote = "{REMOTE}" }}]
""")
        config.chmod(0o600)  # as `login` writes it (it holds a token)
        self.procs = []
        if install:
            out = self.cli("install", "mpv")
            assert out.returncode == 0, out.stdout + out.stderr

    def cli(self, *args):
        return subprocess.run(CLI + list(args), env=self.env, capture_output=True, text=True, timeout=60)

    def mpv(self, *args):
        proc = subprocess.Popen(["mpv", "--vo=null", "--ao=null", "--no-terminal", *map(str, args)],
                                env=self.env, stdin=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def socket_of(self, proc) -> Path:
        return self.runtime / f"playback-sync-mpv-{proc.pid}.sock"

    def client(self, path):
        """Our own JSON IPC client (a second one beside the agent), to drive mpv as a viewer would."""
        path = str(path)
        wait_for(lambda: os.path.exists(path), what=f"mpv's socket {path}")
        return jsonipc.MPV(start_mpv=False, ipc_socket=path)

    def data(self, name):
        return self.fake.user_data(self.uid, self.items[name])

    def position(self, name) -> float:
        return self.data(name).position_ticks / TICKS_PER_SECOND

    def close(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
        for pid in agent_pids(self.home):
            os.kill(pid, signal.SIGKILL)


def agent_pids(home) -> list:
    """The agents started for this HOME (their environment names it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"attach" in cmd and f"HOME={home}".encode() in env:
            found.append(int(entry.name))
    return found


def agents_gone(home):
    return not agent_pids(home)


def ping_agent(client):
    """Wait until an agent answers on this mpv (the Lua script's own handshake)."""
    answers = []
    client.bind_event("client-message", lambda e: answers.append(e.get("args")))

    def answered():
        client.command("script-message", "playback-sync-ping")
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            if any(a and a[0] == "playback-sync-agent" for a in answers):
                return True
            time.sleep(0.05)
        return False
    wait_for(answered, what="the agent to answer")


@pytest.fixture
def jellyfin():
    with JellyfinFake(version="10.10.7") as fake:
        yield fake


@pytest.fixture
def world(tmp_path, jellyfin, clips):
    w = World(tmp_path, jellyfin, clips["short"].parent)
    yield w
    w.close()


def test_played_to_the_end_is_watched_and_the_agent_exits(world, clips):
    proc = world.mpv("--speed=3", clips["short"])
    assert proc.wait(60) == 0
    wait_for(lambda: world.data("short").played, what="watched on the server")
    wait_for(lambda: agents_gone(world.home), what="the agent to exit after mpv quit")
    assert world.data("short").play_count == 1
    assert list(world.runtime.iterdir()) == []  # the private socket went with mpv and its agent


def test_progress_pause_and_stop_at_40_percent(world, clips):
    proc = world.mpv(clips["long"])
    client = world.client(world.socket_of(proc))
    try:
        wait_for(lambda: world.position("long") > 0, what="progress while playing")
        sent = world.position("long")
        # Past the tracker's "same place" distance (1 s) from the last progress, so the pause must send.
        wait_for(lambda: (client.command("get_property", "time-pos") or 0) >= sent + 1.5, what="1.5 s more")
        client.command("set_property", "pause", True)
        paused_at = client.command("get_property", "time-pos")
        wait_for(lambda: abs(world.position("long") - paused_at) < 0.5, what="the pause position on the server")
        client.command("set_property", "pause", False)
        client.command("set_property", "speed", 4)
        wait_for(lambda: (client.command("get_property", "time-pos") or 0) >= 12, what="40 %")
        client.command("stop")
    finally:
        client.terminate()
    assert proc.wait(30) == 0
    wait_for(lambda: 11.5 <= world.position("long") <= 14, what="the stop position (40 %) on the server")
    wait_for(lambda: agents_gone(world.home), what="the agent to exit")
    assert not world.data("long").played


def test_two_windows_each_get_an_agent_sharing_one_queue(world, clips):
    first = world.mpv("--speed=2", "--pause", clips["short"])
    second = world.mpv("--speed=2", "--pause", clips["other"])
    clients = [world.client(world.socket_of(p)) for p in (first, second)]
    try:
        for c in clients:
            ping_agent(c)
        assert len(agent_pids(world.home)) == 2
        for c in clients:
            c.command("set_property", "pause", False)
    finally:
        for c in clients:
            c.terminate()
    assert first.wait(60) == 0 and second.wait(60) == 0
    wait_for(lambda: world.data("short").played and world.data("other").played, what="both watched")
    wait_for(lambda: agents_gone(world.home), what="both agents to exit")
    assert world.data("short").play_count == 1 and world.data("other").play_count == 1
    queues = list((world.home / ".local" / "share" / "playback-sync").glob("queue.sqlite"))
    assert len(queues) == 1


def test_the_users_own_ipc_socket_is_used_and_kept(world, clips):
    own = world.tmp / "my-mpv.sock"
    conf = world.home / ".config" / "mpv" / "mpv.conf"
    conf.write_text(f"input-ipc-server={own}\nkeep-open=yes\n")
    proc = world.mpv("--speed=3", clips["short"])
    client = world.client(own)
    try:
        wait_for(lambda: world.data("short").played, what="watched (keep-open: at eof-reached)")
        assert client.command("get_property", "input-ipc-server") == str(own)
        pids = agent_pids(world.home)
        assert pids and all(str(own).encode() in Path(f"/proc/{p}/cmdline").read_bytes() for p in pids)
        assert not world.socket_of(proc).exists()
        client.command("quit")
    finally:
        client.terminate()
    assert proc.wait(30) == 0
    wait_for(lambda: agents_gone(world.home), what="the agent to exit")
    assert world.data("short").play_count == 1


def test_mpv_killed_mid_file_leaves_the_last_position_seen(tmp_path, jellyfin, clips):
    # No periodic progress before the kill (interval 60 s): what reaches the server is the agent's record
    # of the last position it saw, made when mpv's socket closed.
    world = World(tmp_path, jellyfin, clips["short"].parent, progress=60)
    try:
        _killed_mid_file(world, clips)
    finally:
        world.close()


def _killed_mid_file(world, clips):
    proc = world.mpv(clips["long"])
    client = world.client(world.socket_of(proc))
    ping_agent(client)
    wait_for(lambda: (client.command("get_property", "time-pos") or 0) >= 5, what="5 s played")
    seen = client.command("get_property", "time-pos")
    assert world.position("long") == 0  # nothing sent while playing (interval 60 s)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    client.terminate()
    # The agent samples once a second: the last position it saw is at most 1 s before ours.
    wait_for(lambda: world.position("long") > 0 and -0.05 <= seen - world.position("long") <= 1.2,
             what="the last position seen on the server")
    wait_for(lambda: agents_gone(world.home), what="the agent to exit after mpv died")
    assert not world.data("long").played
    assert list(world.runtime.iterdir()) == []  # the dead mpv's socket file is removed by its agent


def test_killing_the_agent_leaves_mpv_playing_and_the_next_file_gets_a_new_agent(world, clips):
    proc = world.mpv(clips["long"], clips["other"])
    client = world.client(world.socket_of(proc))
    try:
        ping_agent(client)
        [pid] = agent_pids(world.home)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not Path(f"/proc/{pid}").exists() or b"Z" in Path(f"/proc/{pid}/stat").read_bytes()
                 .split(b")")[-1][:3], what="the agent to die")
        before = client.command("get_property", "time-pos")
        wait_for(lambda: (client.command("get_property", "time-pos") or 0) > before + 0.5, what="mpv to play on")
        client.command("playlist-next")
        wait_for(lambda: [p for p in agent_pids(world.home) if p != pid], what="a new agent for the next file")
    finally:
        client.terminate()
    assert proc.wait(60) == 0
    wait_for(lambda: world.data("other").played, what="the next file watched through the new agent")
    wait_for(lambda: agents_gone(world.home), what="the new agent to exit")


def test_keys_are_script_messages_to_the_agent(world, clips):
    proc = world.mpv("--pause", clips["short"])
    client = world.client(world.socket_of(proc))
    try:
        ping_agent(client)
        client.command("script-binding", "playback_sync/mark-watched")
        wait_for(lambda: world.data("short").played, what="marked watched by the key")
        client.command("keypress", "Alt+u")
        wait_for(lambda: not world.data("short").played, what="marked unwatched by Alt+u")
        client.command("quit")
    finally:
        client.terminate()
    assert proc.wait(30) == 0
    wait_for(lambda: agents_gone(world.home), what="the agent to exit")


def _tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None, p.stat().st_mode)
            for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("existing", [False, True], ids=["fresh-home", "mpv-folder-with-user-files"])
def test_uninstall_leaves_the_folder_as_it_was(tmp_path, jellyfin, clips, existing):
    w = World(tmp_path, jellyfin, clips["short"].parent, install=False)
    try:
        mpv_dir = w.home / ".config" / "mpv"
        if existing:
            (mpv_dir / "scripts").mkdir(parents=True)
            (mpv_dir / "mpv.conf").write_text("volume=50\n")
            (mpv_dir / "scripts" / "mine.lua").write_text("-- the user's own\n")
        before = _tree(w.home / ".config")
        assert w.cli("install", "mpv").returncode == 0
        script = mpv_dir / "scripts" / "playback-sync.lua"
        installed = _tree(w.home / ".config")
        stamp = script.stat().st_mtime_ns
        again = w.cli("install", "mpv")
        assert again.returncode == 0 and "already installed" in again.stdout
        assert _tree(w.home / ".config") == installed and script.stat().st_mtime_ns == stamp
        status = json.loads(w.cli("status", "--json", "--no-check").stdout)
        assert [s["path"] for s in status["mpv_script"]] == [str(script)]
        assert status["mpv_script"][0]["version"]
        out = w.cli("uninstall", "mpv")
        assert out.returncode == 0, out.stdout
        assert _tree(w.home / ".config") == before
        assert json.loads(w.cli("status", "--json", "--no-check").stdout)["mpv_script"] == []
    finally:
        w.close()


def test_without_playback_sync_mpv_plays_as_usual(world, clips):
    """The command the script names is gone (uninstalled Python): mpv still plays to the end, exit 0."""
    script = world.home / ".config" / "mpv" / "scripts" / "playback-sync.lua"
    script.write_text(script.read_text().replace(sys.executable, str(world.tmp / "no-such-python"), 1))
    log = world.tmp / "mpv.log"
    proc = world.mpv("--speed=3", f"--log-file={log}", clips["short"])
    assert proc.wait(60) == 0
    assert agents_gone(world.home) and not world.data("short").played
    said = [line for line in log.read_text().splitlines() if "[playback_sync]" in line and "[w]" in line]
    assert len(said) == 1 and "not syncing" in said[0] and "no-such-python" in said[0]  # one line, why


def test_play_with_the_script_installed_starts_no_agent(world, clips):
    """`playback-sync play` serves its own mpv: the installed script must not add a second host."""
    out = subprocess.run(CLI + ["play", str(clips["short"]), "--vo=null", "--ao=null", "--speed=3"],
                         env=world.env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    wait_for(lambda: world.data("short").played, what="watched through play's own host")
    # An agent takes its per-mpv lock as soon as it connects; play ran long past the first frame.
    assert not (world.home / ".local" / "state" / "playback-sync" / "agents").exists()
    assert agents_gone(world.home) and world.data("short").play_count == 1


def test_mpv_quitting_at_once_leaves_no_agent_and_no_private_folder(world, clips):
    """No $XDG_RUNTIME_DIR: the script makes a private folder under $TMPDIR; whatever the timing, the
    agent ends soon after mpv and the folder goes with it (mpv here quits a moment after its first frame)."""
    tmpdir = world.tmp / "tmpdir"
    tmpdir.mkdir()
    del world.env["XDG_RUNTIME_DIR"]
    world.env["TMPDIR"] = str(tmpdir)
    for _ in range(3):
        assert world.mpv("--speed=100", clips["short"]).wait(60) == 0
    wait_for(lambda: agents_gone(world.home), timeout=20, what="the agents to end")
    wait_for(lambda: list(tmpdir.iterdir()) == [], timeout=5, what="the private folders to be removed")


def test_celluloid_gets_the_script_in_its_own_folder_and_loses_it_at_uninstall(tmp_path, jellyfin, clips):
    w = World(tmp_path, jellyfin, clips["short"].parent, install=False)
    try:
        celluloid = w.home / ".config" / "celluloid"
        celluloid.mkdir(parents=True)  # Celluloid has been started once
        before = _tree(w.home / ".config")
        out = w.cli("install", "mpv")
        assert out.returncode == 0 and "Celluloid: installed" in out.stdout
        assert (celluloid / "scripts" / "playback-sync.lua").read_text() == \
            (w.home / ".config" / "mpv" / "scripts" / "playback-sync.lua").read_text()
        assert "IINA" in out.stdout and "SMPlayer" in out.stdout and "mpv.net" in out.stdout
        assert w.cli("uninstall", "mpv").returncode == 0
        assert _tree(w.home / ".config") == before
    finally:
        w.close()


def test_mpv_home_and_an_explicit_folder_are_where_it_goes(tmp_path, jellyfin, clips):
    w = World(tmp_path, jellyfin, clips["short"].parent, install=False)
    try:
        w.env["MPV_HOME"] = str(tmp_path / "mpv-home")
        assert w.cli("install", "mpv").returncode == 0
        assert (tmp_path / "mpv-home" / "scripts" / "playback-sync.lua").exists()
        assert not (w.home / ".config" / "mpv").exists()
        assert w.cli("install", "mpv", "--mpv-config-dir", str(tmp_path / "other")).returncode == 0
        assert (tmp_path / "other" / "scripts" / "playback-sync.lua").exists()
        assert w.cli("uninstall", "mpv").returncode == 0
        assert not (tmp_path / "mpv-home").exists() and not (tmp_path / "other").exists()
    finally:
        w.close()


def test_server_down_at_quit_the_agent_gives_up_in_time_and_sync_sends_it_later(world, clips):
    proc = world.mpv(clips["long"])
    client = world.client(world.socket_of(proc))
    try:
        wait_for(lambda: world.position("long") > 0, what="progress (the file is identified)")
        world.fake.go_down()
        client.command("seek", 29, "absolute")  # plays to the end while the server is away
    finally:
        client.terminate()
    assert proc.wait(30) == 0
    quit_at = time.monotonic()
    wait_for(lambda: agents_gone(world.home), timeout=20, what="the agent to stop trying and exit")
    assert time.monotonic() - quit_at < 5 + 5  # agent_drain_seconds, plus its own start-up margin
    assert not world.data("long").played
    world.fake.come_back()
    out = world.cli("sync", "--timeout", "20")
    assert out.returncode == 0, out.stdout + out.stderr
    assert world.data("long").played and world.data("long").play_count == 1


def test_broken_settings_show_one_line_and_mpv_plays_on(world, clips):
    config = world.home / ".config" / "playback-sync" / "config.toml"
    config.write_text(config.read_text().replace("progress_interval = 2", "progress_interval = -1"))
    log = world.tmp / "mpv.log"
    proc = world.mpv("--speed=0.5", f"--log-file={log}", "--msg-level=cplayer=trace", clips["short"])
    wait_for(lambda: log.exists() and "settings need fixing" in log.read_text(), what="the agent's message")
    assert proc.wait(60) == 0
    wait_for(lambda: agents_gone(world.home), what="the agent to exit")
    lines = log.read_text().splitlines()
    shown = [line for line in lines if "show-text" in line and "Playback Sync" in line]
    assert len(shown) == 1 and "progress_interval" in shown[0]
    assert not [line for line in lines if "[playback_sync]" in line and "[w]" in line]  # no second line
    assert not world.data("short").played
