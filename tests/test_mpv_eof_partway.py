"""An end of file part-way through is not "watched": real libmpv, generated clips.

mpv reports ``eof`` when ``--end``/``--length`` stop playback early and when a
file is cut short (truncated, or still downloading). The tracker counts an end of file as
watched only near the known duration; elsewhere it is progress where playback ended.
"""
import threading

import pytest

mpv = pytest.importorskip("mpv")

from playbacksync.changes import PROGRESS, WATCHED  # noqa: E402
from playbacksync.hosts.mpv import MpvHost  # noqa: E402
from playbacksync.tracker import Tracker  # noqa: E402
from playbacksync.tracker.events import ENDED  # noqa: E402
from tests.media import make_clip  # noqa: E402

pytestmark = pytest.mark.mpv


class Sink:
    def __init__(self):
        self.tracker = Tracker(progress_interval=10, watched_percent=90)
        self.events, self.changes = [], []
        self.lock = threading.Lock()
        self.ended = threading.Event()

    def __call__(self, event):
        with self.lock:
            self.events.append(event)
            self.changes.extend(self.tracker.handle(event))
        if event.kind == ENDED:
            self.ended.set()


def play(target, **options):
    sink = Sink()
    host = MpvHost(sink, mpv_options={"vo": "null", "ao": "null", **options}, use_config=False)
    host.start([str(target)])
    try:
        assert sink.ended.wait(30), "the viewing did not end in time"
        if options.get("keep_open") == "yes":
            host.player.command("quit")  # mpv stays open on the last frame
        assert host.wait(30), "mpv did not finish in time"
    finally:
        host.close()
    return sink


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("eof"), 10, name="ten")


@pytest.mark.parametrize("options", [
    {"end": "40%"}, {"length": "4"}, {"end": "40%", "keep_open": "yes"},
], ids=["end-40%", "length-4s", "end-40%-keep-open"])
def test_eof_at_40_percent_is_progress_there(clip, options):
    sink = play(clip, speed=4, **options)
    assert sink.events[-1].kind == ENDED and sink.events[-1].reason == "eof"
    assert not [c for c in sink.changes if c.change_type == WATCHED]
    last = sink.changes[-1]
    assert last.change_type == PROGRESS
    assert last.position_ms == pytest.approx(4000, abs=150)


def test_a_truncated_file_ending_at_40_percent_is_progress_there(tmp_path):
    # A Matroska file cut at 40 % of its bytes: its header still says 10 s, playback ends early.
    whole = make_clip(tmp_path, 10, name="whole", fmt="mkv")
    data = whole.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * 0.4)])
    sink = play(cut, speed=4)
    assert sink.events[-1].reason == "eof"
    assert sink.events[-1].duration == pytest.approx(10, abs=0.2)
    assert not [c for c in sink.changes if c.change_type == WATCHED]
    assert sink.changes and sink.changes[-1].change_type == PROGRESS
    assert 2000 < sink.changes[-1].position_ms < 6000


def test_eof_at_the_real_end_is_still_watched(clip):
    sink = play(clip, speed=20)
    assert [c.change_type for c in sink.changes] == [WATCHED]
