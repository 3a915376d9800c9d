"""SyncService's host API (status, retry, sync now, pause/resume): what hosts use instead of .worker/.queue."""
import time

import pytest

from playbacksync.app import SyncService
from playbacksync.config import Config, PathMapping, ServerConfig, SyncOptions
from playbacksync.tracker.events import MARKED_WATCHED, STARTED, MediaRef, PlaybackEvent
from tests.fakes.jellyfin import JellyfinFake


@pytest.fixture
def jellyfin():
    with JellyfinFake(version="10.11.11") as fake:
        fake.uid = fake.add_user("alice", "pass")
        fake.token = fake.issue_token(fake.uid)
        fake.iid = fake.add_item("Clip", path="/srv/media/clip.mkv", runtime_s=600)
        yield fake


def _config(fake):
    return Config(servers=(ServerConfig(id="home", type="jellyfin", url=fake.url, token=fake.token,
                                        user_id=fake.uid, path_mappings=(PathMapping("/mnt/media", "/srv/media"),)),),
                  sync=SyncOptions(progress_interval=10))


def wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _mark_watched(service):
    media = MediaRef(path="/mnt/media/clip.mkv", title="clip", entry_key="1")
    service.handle(PlaybackEvent(STARTED, media=media, position=0.0, duration=600.0, at=0.0))
    service.handle(PlaybackEvent(MARKED_WATCHED, media=media, position=10.0, duration=600.0, at=1.0))


def test_before_start_the_service_answers_without_raising(jellyfin, tmp_path):
    service = SyncService(_config(jellyfin), str(tmp_path / "data"))
    assert not service.running()
    assert {sid: s.state for sid, s in service.status().items()} == {"home": "not running"}
    assert service.retry_failed() == 0 and service.sync_now() is False


def test_status_counts_and_states_follow_the_queue(jellyfin, tmp_path):
    service = SyncService(_config(jellyfin), str(tmp_path / "data"))
    service.start()
    try:
        assert service.wait_ready(10) and service.running()
        _mark_watched(service)
        assert wait_for(lambda: service.status()["home"].counts.get("synced", 0) >= 1)
        assert service.status()["home"].state == "online" and service.status()["home"].waiting() == 0
    finally:
        service.stop(3.0)


def test_retry_failed_sends_a_failed_change_again(jellyfin, tmp_path):
    service = SyncService(_config(jellyfin), str(tmp_path / "data"))
    service.start()
    try:
        assert service.wait_ready(10)
        assert wait_for(lambda: service.status()["home"].state == "online")
        service.pause()
        _mark_watched(service)
        assert wait_for(lambda: service.status()["home"].counts.get("pending", 0) >= 1)
        jellyfin.fail_next(400)  # a refusal the worker does not retry: the change fails
        service.resume()
        assert wait_for(lambda: service.status()["home"].counts.get("failed", 0) >= 1)
        jellyfin.reset_trouble()
        assert service.retry_failed("home") >= 1
        assert wait_for(lambda: jellyfin.user_data(jellyfin.uid, jellyfin.iid).played)
        assert service.status()["home"].counts.get("failed", 0) == 0
    finally:
        service.stop(3.0)


def test_pause_holds_changes_and_resume_with_sync_now_sends_them(jellyfin, tmp_path):
    service = SyncService(_config(jellyfin), str(tmp_path / "data"))
    service.start()
    try:
        assert service.wait_ready(10)
        service.pause()
        assert wait_for(lambda: service.status()["home"].state == "paused")
        _mark_watched(service)
        assert wait_for(lambda: service.status()["home"].counts.get("pending", 0) >= 1)
        assert not jellyfin.user_data(jellyfin.uid, jellyfin.iid).played
        service.resume()
        assert service.sync_now()
        assert wait_for(lambda: jellyfin.user_data(jellyfin.uid, jellyfin.iid).played)
    finally:
        service.stop(3.0)
