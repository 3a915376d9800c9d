"""The mpv host against real libmpv: generated clips, headless, fast; events run through the real Tracker."""
import logging
import threading
import time

import pytest

mpv = pytest.importorskip("mpv")

from playbacksync.changes import PROGRESS, UNWATCHED, WATCHED  # noqa: E402
from playbacksync.hosts import mpv as mpv_host  # noqa: E402
from playbacksync.hosts.mpv import MpvHost, run_player  # noqa: E402
from playbacksync.tracker import Tracker  # noqa: E402
from playbacksync.tracker.events import (ENDED, MARKED_WATCHED, PAUSED, POSITION, SEEKED,  # noqa: E402
                                         STARTED)
from tests.media import make_clip  # noqa: E402

pytestmark = pytest.mark.mpv

HEADLESS = {"vo": "null", "ao": "null"}


@pytest.fixture(scope="session")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    return {"ten": make_clip(folder, 10, name="ten"), "six": make_clip(folder, 6, name="six")}


class Recorder:
    """A sink: keeps every event and what the real tracker makes of it."""

    def __init__(self, **tracker_options):
        self.tracker = Tracker(**tracker_options)
        self.events, self.changes = [], []
        self.cond = threading.Condition()

    def __call__(self, event):
        with self.cond:
            self.events.append(event)
            self.changes.extend(self.tracker.handle(event))
            self.cond.notify_all()

    def wait_for(self, predicate, timeout=10.0):
        with self.cond:
            assert self.cond.wait_for(lambda: predicate(self), timeout), f"timed out; events: {self.kinds()}"

    def kinds(self):
        return [(e.kind, e.reason, e.media.entry_key if e.media else None) for e in self.events]

    def changes_of(self, change_type):
        return [c for c in self.changes if c.change_type == change_type]


def wait_until(check, timeout=10.0, step=0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not met in time")


def time_pos(host):
    try:
        return host.player.time_pos or 0.0
    except Exception:
        return 0.0


def run(targets, sink, *, options=None, drive=None, timeout=15.0, **host_options):
    host_options.setdefault("use_config", False)
    host = MpvHost(sink, mpv_options={**HEADLESS, **(options or {})}, **host_options)
    host.start([str(t) for t in targets])
    try:
        if drive is not None:
            drive(host)
        assert host.wait(timeout), "mpv did not finish in time"
    finally:
        code = host.close()
    return code


def test_play_to_the_end_is_watched(clips):
    rec = Recorder()
    firsts = []
    code = run([clips["ten"]], rec, options={"speed": 100}, on_first_frame=lambda: firsts.append(1))
    assert code == 0
    assert [k[:2] for k in rec.kinds()] == [(STARTED, None), (ENDED, "eof")]
    assert rec.events[0].media.path == str(clips["ten"])
    assert rec.events[0].duration == pytest.approx(10, abs=0.1)
    (watched,) = rec.changes
    assert (watched.change_type, watched.position_ms, watched.duration_ms) == (WATCHED, 10000, 10000)
    assert firsts == [1]


@pytest.mark.parametrize("command, reason", [("stop", "stop"), ("quit", "quit")])
def test_leaving_at_40_percent_flushes_that_position(clips, command, reason):
    rec = Recorder()
    left_at = []

    def drive(host):
        left_at.append(wait_until(lambda: (lambda p: p if p >= 4.0 else None)(time_pos(host))))
        host.player.command(command)

    # Real time: at 10x a 140 ms stall of a loaded machine between reading the position and
    # the command moved the player 1.4 s on; at 1x it moves 0.14 s.
    run([clips["ten"]], rec, options={"speed": 1}, drive=drive)
    assert rec.kinds()[-1][:2] == (ENDED, reason)
    assert not rec.changes_of(WATCHED)
    (progress,) = rec.changes_of(PROGRESS)
    # The unload position (Lua hook): where the test left, not the last 1 s sample.
    assert progress.position_ms == pytest.approx(left_at[0] * 1000, abs=300)


def test_settled_seek_and_pause_send_progress_at_once(clips):
    rec = Recorder()

    def drive(host):
        wait_until(lambda: time_pos(host) > 0.2)
        host.player.command("seek", "6", "absolute+exact")
        rec.wait_for(lambda r: any(e.kind == SEEKED for e in r.events))
        host.player.pause = True
        rec.wait_for(lambda r: any(e.kind == PAUSED for e in r.events))
        host.player.command("quit")

    run([clips["ten"]], rec, options={"speed": 1}, drive=drive)
    seeked = next(e for e in rec.events if e.kind == SEEKED)
    assert seeked.position == pytest.approx(6.0, abs=0.3)
    progress = rec.changes_of(PROGRESS)
    assert progress[0].position_ms == pytest.approx(seeked.position * 1000, abs=1)
    # pause and quit within a second of the seek: the same place, not sent again
    assert len(progress) == 1
    assert rec.kinds()[-1][:2] == (ENDED, "quit")


def test_positions_are_sampled_at_a_low_rate_while_playing(clips):
    rec = Recorder(progress_interval=0.25)

    def drive(host):
        time.sleep(1.2)
        host.player.command("quit")

    run([clips["ten"]], rec, options={"speed": 1}, drive=drive, sample_interval=0.2)
    samples = [e for e in rec.events if e.kind == POSITION]
    assert 3 <= len(samples) <= 7  # ~5 in 1.2 s: a timer, not a per-frame observer (30 frames)
    positions = [e.position for e in samples]
    assert positions == sorted(positions) and positions[-1] < 2.0
    ats = [e.at for e in rec.events]
    assert ats == sorted(ats)
    assert [c.change_type for c in rec.changes] and all(c.change_type == PROGRESS for c in rec.changes)


def test_playlist_entries_are_tracked_separately(clips):
    rec = Recorder()

    def drive(host):
        wait_until(lambda: time_pos(host) >= 4.0 and host.player.playlist_pos == 0)
        host.player.command("playlist-next")

    run([clips["ten"], clips["six"]], rec, options={"speed": 10}, drive=drive)
    starts = [e for e in rec.events if e.kind == STARTED]
    assert [(s.media.path, s.media.entry_key) for s in starts] == [(str(clips["ten"]), "1"),
                                                                   (str(clips["six"]), "2")]
    assert [(e.reason, e.media.entry_key) for e in rec.events if e.kind == ENDED] == [("stop", "1"), ("eof", "2")]
    assert [(c.change_type, c.media.path) for c in rec.changes] == [
        (PROGRESS, str(clips["ten"])), (WATCHED, str(clips["six"]))]
    assert 4000 <= rec.changes[0].position_ms <= 6000


def test_the_same_file_twice_is_two_entries(clips):
    rec = Recorder()
    run([clips["six"], clips["six"]], rec, options={"speed": 100})
    watched = rec.changes_of(WATCHED)
    assert [c.media.entry_key for c in watched] == ["1", "2"]


def test_keep_open_from_the_users_mpv_conf(clips, tmp_path):
    """keep-open=yes in the user's own mpv.conf: no end-file at the end, still watched; going back is a new viewing."""
    (tmp_path / "mpv.conf").write_text("keep-open=yes\n")
    rec = Recorder()

    def drive(host):
        rec.wait_for(lambda r: any(e.kind == ENDED for e in r.events))
        assert host.player.keep_open in (True, "yes")  # read from the mpv.conf
        wait_until(lambda: host.player.pause)
        host.player.command("seek", "3", "absolute+exact")
        rec.wait_for(lambda r: sum(e.kind == STARTED for e in r.events) == 2)
        host.player.command("quit")

    run([clips["six"]], rec, options={"speed": 100}, drive=drive, use_config=True, config_dir=str(tmp_path))
    assert [k[:2] for k in rec.kinds()][:2] == [(STARTED, None), (ENDED, "eof")]
    assert [(c.change_type, c.position_ms) for c in rec.changes] == [(WATCHED, 6000), (PROGRESS, 3000)]


def test_keys_and_script_messages_mark_by_hand(clips, tmp_path):
    # The user's input.conf wins over our default binding for the same key.
    (tmp_path / "input.conf").write_text("Alt+u script-message playback-sync mark-watched\n")
    rec = Recorder()

    def drive(host):
        wait_until(lambda: time_pos(host) > 0.5)
        host.player.command("keypress", "Alt+w")
        rec.wait_for(lambda r: len(r.changes) == 1)
        host.player.command("script-message", "playback-sync", "mark-unwatched")
        rec.wait_for(lambda r: len(r.changes) == 2)
        host.player.command("keypress", "Alt+u")  # rebound by input.conf to mark-watched
        rec.wait_for(lambda r: len(r.changes) == 3)
        host.player.command("quit")

    run([clips["ten"]], rec, options={"speed": 1}, drive=drive, use_config=True, config_dir=str(tmp_path))
    assert [c.change_type for c in rec.changes[:3]] == [WATCHED, UNWATCHED, WATCHED]
    assert all(e.media.entry_key == "1" for e in rec.events if e.kind == MARKED_WATCHED)


def test_settings_key_calls_back_once_at_a_time(clips):
    rec = Recorder()
    opened, release = [], threading.Event()

    def on_settings():
        opened.append(threading.current_thread().name)
        release.wait(5)

    def drive(host):
        wait_until(lambda: time_pos(host) > 0.2)
        host.player.command("keypress", "Alt+o")
        wait_until(lambda: opened)
        host.player.command("keypress", "Alt+o")  # still open: not a second dialog
        time.sleep(0.2)
        release.set()
        host.player.command("quit")

    run([clips["ten"]], rec, options={"speed": 1}, drive=drive, on_settings=on_settings)
    assert opened == ["playback-sync-settings"]


def test_relative_paths_are_resolved_against_the_working_directory(clips, monkeypatch):
    monkeypatch.chdir(clips["six"].parent)
    rec = Recorder()
    run(["six.mp4"], rec, options={"speed": 100})
    assert rec.events[0].media.path == str(clips["six"])


@pytest.fixture
def http_server(clips):
    """A Range-capable static server (Werkzeug's send_file, conditional) for the clips."""
    from werkzeug.exceptions import NotFound
    from werkzeug.serving import make_server
    from werkzeug.utils import send_file
    from werkzeug.wrappers import Request

    ranges = []

    @Request.application
    def app(request):
        ranges.append(request.headers.get("Range"))
        name = request.path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        if name not in clips:
            return NotFound()
        return send_file(str(clips[name]), request.environ, conditional=True)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", ranges
    server.shutdown()


def test_http_url_with_range_requests_and_token_redacted(http_server, caplog, capfd):
    base, ranges = http_server
    url = f"{base}/videos/ten.mp4?api_key=SECRETTOKEN123"
    rec = Recorder()
    caplog.set_level(logging.DEBUG, logger="playbacksync")
    titles = []

    def drive(host):
        wait_until(lambda: time_pos(host) > 0.3)
        titles.append(host.player.media_title)  # what the window title and OSD show
        host.player.command("seek", "7", "absolute+exact")  # seeking in a stream

    run([url], rec, options={"speed": 10}, drive=drive)
    assert any(r and r.startswith("bytes=") for r in ranges)  # mpv asks for ranges; the server gives 206
    assert rec.events[0].media.path == url  # identification needs what was played
    assert "SECRETTOKEN123" not in rec.events[0].media.title
    assert titles == ["ten.mp4"]
    assert rec.changes_of(WATCHED)
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("playbacksync"))
    assert "SECRETTOKEN123" not in ours and "/videos/ten.mp4?…" in ours
    terminal = capfd.readouterr()
    assert "SECRETTOKEN123" not in terminal.out + terminal.err


def test_mpv_errors_reach_stderr_without_tokens(http_server, capfd):
    base, _ = http_server
    rec = Recorder()
    code = run([f"{base}/videos/missing.mp4?api_key=SECRETTOKEN123"], rec)
    err = capfd.readouterr().err
    assert code == mpv_host.EXIT_NOTHING_PLAYED and rec.events == []
    assert "/videos/missing.mp4?…" in err and "SECRETTOKEN123" not in err


def test_a_missing_file_plays_nothing_and_says_so(tmp_path):
    rec = Recorder()
    assert run([tmp_path / "nope.mp4"], rec) == mpv_host.EXIT_NOTHING_PLAYED
    assert rec.events == [] and rec.changes == []


def test_an_option_mpv_does_not_know_is_a_clear_error(clips, capsys):
    code = run_player([str(clips["six"])], {**HEADLESS, "no-such-option": "1"}, use_config=False)
    assert code == mpv_host.EXIT_BAD_OPTIONS
    assert "--no-such-option=1" in capsys.readouterr().err


def test_a_failing_sink_or_first_frame_callback_does_not_stop_playback(clips, caplog):
    def sink(event):
        raise RuntimeError("sink broke")

    def first():
        raise RuntimeError("first broke")

    assert run([clips["six"]], sink, options={"speed": 100}, on_first_frame=first) == 0
    assert "sink broke" in caplog.text and "first broke" in caplog.text


def test_sync_messages_subscribed_for_the_osd_and_unsubscribed_at_the_end(clips):
    callbacks, unsubscribed = [], []

    def subscribe(callback):
        callbacks.append(callback)
        return lambda: unsubscribed.append(callback)

    class Msg:
        kind, source_id, message, change = "offline", "home", "connection refused", None

    def drive(host):
        wait_until(lambda: time_pos(host) > 0.2)
        callbacks[0](Msg())  # as the worker's thread would; must not raise
        host.player.command("quit")

    run([clips["ten"]], Recorder(), options={"speed": 1}, drive=drive, subscribe=subscribe)
    assert len(callbacks) == 1 and unsubscribed == callbacks
