"""End to end: real libmpv plays a clip -> host -> SyncService (tracker, identification, SQLite
queue, worker) -> the real Jellyfin backend -> the spec-validating fake Jellyfin over HTTP."""
import threading
import time

import pytest

pytest.importorskip("mpv")

from playbacksync.app import SyncService  # noqa: E402
from playbacksync.config import Config, PathMapping, ServerConfig, SyncOptions  # noqa: E402
from playbacksync.hosts.mpv import MpvHost, OsdPolicy  # noqa: E402
from tests.fakes.base import fail_on_spec_violations  # noqa: F401,E402
from tests.fakes.jellyfin import JellyfinFake  # noqa: E402
from tests.media import make_clip  # noqa: E402

pytestmark = pytest.mark.mpv

REMOTE = "/srv/media/videos"


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("e2e-clips")
    make_clip(folder, 6, name="known")
    make_clip(folder, 6, name="unknown")
    return folder


@pytest.fixture
def jellyfin():
    with JellyfinFake(version="10.10.7") as fake:
        yield fake


def wait_for(check, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Harness:
    """What `playback-sync play` wires: a SyncService started at the first frame, the host's sink and OSD."""

    def __init__(self, fake, clip_dir, tmp_path):
        self.fake = fake
        self.uid = fake.add_user("alice", "pass")
        token = fake.issue_token(self.uid)
        server = ServerConfig(id="jellyfin", type="jellyfin", url=fake.url, token=token, user_id=self.uid,
                              device_id="dev-1", path_mappings=(PathMapping(str(clip_dir), REMOTE),),
                              connect_timeout=1.0, read_timeout=2.0)
        self.item = fake.add_item("Known", path=f"{REMOTE}/known.mp4", runtime_s=6.0)
        self.service = SyncService(Config(servers=(server,), sync=SyncOptions()), str(tmp_path / "data"),
                                   worker_options={"poll_interval": 0.2, "backoff_base": 0.1, "backoff_cap": 0.5})
        self.messages = []
        self.osd = OsdPolicy("errors")
        self.osd_texts = []
        # Recorded for the whole test (the host's own OSD subscription ends with the player).
        self.service.subscribe(self._record)

    def _record(self, message):
        self.messages.append(message)
        text = self.osd.text_for(message)
        if text:
            self.osd_texts.append(text)

    def play(self, targets, drive=None, **options):
        """Play until mpv quits; ``drive(host)`` runs meanwhile (in this thread). Returns the exit code."""
        started = threading.Event()

        def first_frame():
            started.set()
            self.service.start()

        host = MpvHost(self.service.handle, mpv_options={"vo": "null", "ao": "null", **options},
                       subscribe=self.service.subscribe, on_first_frame=first_frame, use_config=False)
        host.start([str(t) for t in targets])
        try:
            if drive is not None:
                drive(host)
            assert host.wait(20)
        finally:
            code = host.close()
        assert started.is_set()
        return code

    def played(self):
        return self.fake.user_data(self.uid, self.item).played

    def posts(self):
        return [r for r in self.fake.requests if r.method in ("POST", "DELETE")]


def test_play_to_the_end_marks_it_watched_on_the_server(jellyfin, clip_dir, tmp_path):
    h = Harness(jellyfin, clip_dir, tmp_path)
    try:
        assert h.play([clip_dir / "known.mp4"], speed=100) == 0
        wait_for(h.played, what="the fake to show the item watched")
    finally:
        h.service.stop(3.0)
    assert h.fake.user_data(h.uid, h.item).play_count == 1
    assert not h.osd_texts  # nothing went wrong: nothing on screen ("errors" setting)


def test_server_down_during_playback_is_synced_when_it_is_back(jellyfin, clip_dir, tmp_path):
    h = Harness(jellyfin, clip_dir, tmp_path)

    def drive(host):
        # Identified while the server is up (the first frame starts the service), then it goes away
        # and the viewer plays to the end.
        wait_for(lambda: h.service.identifier is not None
                 and h.service.identifier.index.info("jellyfin").item_count >= 1, what="the index")
        time.sleep(0.3)
        h.fake.go_down()
        host.player.pause = False

    try:
        assert h.play([clip_dir / "known.mp4"], drive=drive, speed=100, pause="yes") == 0
        wait_for(lambda: any(m.kind == "offline" for m in h.messages), what="the worker to notice")
        assert not h.played()
        assert any("offline" in t for t in h.osd_texts)
        h.fake.come_back()
        wait_for(h.played, what="the watched mark once the server is back")
    finally:
        h.service.stop(3.0)
    assert h.fake.user_data(h.uid, h.item).play_count == 1


def test_a_file_that_matches_nothing_sends_nothing_and_says_why(jellyfin, clip_dir, tmp_path):
    h = Harness(jellyfin, clip_dir, tmp_path)
    try:
        assert h.play([clip_dir / "unknown.mp4"], speed=100) == 0
        wait_for(lambda: any(m.kind == "not_identified" for m in h.messages), what="the not-identified message")
        time.sleep(0.5)  # give a wrong send the chance to happen
    finally:
        h.service.stop(3.0)
    assert h.posts() == []
    assert not h.played()
    (text,) = [t for t in h.osd_texts if "not synced" in t]
    assert "jellyfin" in text and "unknown.mp4" in text  # which server, which file, why
