"""SyncService's host API (status, retry, sync now, pause/resume): what hosts use instead of .worker/.queue."""
import time

import pytest

from playbacksync.app import SyncService
from playbacksync.config import Config, PathMapping, ServerConfig, SyncOptions
from playbacksync.tracker.events import MARKED_WATCHED, STARTED, MediaRef, PlaybackEvent
from tests.test_app import jellyfin, wait_for as _wait_for  # noqa: F401 (the same fake Jellyfin with one user and one clip)


def _config(fake):
    return Config(servers=(ServerConfig(id="home", type="jellyfin", url=fake.url, token=fake.token,
                                        user_id=fake.uid, path_mappings=(PathMapping("/mnt/media", "/srv/media"),)),),
                  sync=SyncOptions(progress_interval=10))


def wait_for(predicate, timeout=15.0):
    return _wait_for(predicate, timeout)


def _mark_watched(service):
    media = MediaRef(path="/mnt/media/clip.mkv", title="clip", entry_key="1")
    service.handle(PlaybackEvent(STARTED, media=media, position=0.0, duration=600.0, at=0.0))
    service.handle(PlaybackEvent(MARKED_WATCHED, media=media, position=10.0, duration=600.0, at=1.0))


def test_before_start_the_service_answers_without_raising(jellyfin, tmp_path):
    service = SyncService(_config(jellyfin), str(tmp_path / "data"))
    assert not service.running()
    assert {sid: s.state for sid, s in service.status().items()} == {"home": "not running"}
    assert service.retry_failed() == 0 and service.sync_now() is False


@pytest.fixture
def service(jellyfin, tmp_path):
    running = SyncService(_config(jellyfin), str(tmp_path / "data"))
    running.start()
    assert running.wait_ready(10) and running.running()
    yield running
    running.stop(3.0)


def _watched_while_paused(service):
    """A watched mark queued while sending is paused (the server is known to be online)."""
    assert wait_for(lambda: service.status()["home"].state == "online")
    service.pause()
    assert wait_for(lambda: service.status()["home"].state == "paused")
    _mark_watched(service)
    assert wait_for(lambda: service.status()["home"].counts.get("pending", 0) >= 1)


def test_status_counts_and_states_follow_the_queue(service):
    _mark_watched(service)
    assert wait_for(lambda: service.status()["home"].counts.get("synced", 0) >= 1)
    assert service.status()["home"].state == "online" and service.status()["home"].waiting() == 0


def test_retry_failed_sends_a_failed_change_again(service, jellyfin):
    _watched_while_paused(service)
    # a refusal of the write the worker does not retry: the change fails (identification's reads pass)
    jellyfin.fail_next(400, methods=("POST", "DELETE"))
    service.resume()
    assert wait_for(lambda: service.status()["home"].counts.get("failed", 0) >= 1)
    jellyfin.reset_trouble()
    assert service.retry_failed("home") >= 1
    assert wait_for(lambda: jellyfin.user_data(jellyfin.uid, jellyfin.iid).played)
    assert service.status()["home"].counts.get("failed", 0) == 0


def test_pause_holds_changes_and_resume_with_sync_now_sends_them(service, jellyfin):
    _watched_while_paused(service)
    assert not jellyfin.user_data(jellyfin.uid, jellyfin.iid).played
    service.resume()
    assert service.sync_now()
    assert wait_for(lambda: jellyfin.user_data(jellyfin.uid, jellyfin.iid).played)


def test_drain_sends_what_was_just_handed_over(service, jellyfin):
    assert wait_for(lambda: service.status()["home"].state == "online")
    _mark_watched(service)  # handed over, not yet in the queue: drain must wait for it too
    assert service.drain(10.0)
    assert jellyfin.user_data(jellyfin.uid, jellyfin.iid).played
    assert service.status()["home"].waiting() == 0


def test_drain_gives_up_on_an_offline_server_and_keeps_the_change(service, jellyfin):
    _mark_watched(service)  # identified (and cached) while the server is up
    assert wait_for(lambda: service.status()["home"].counts.get("synced", 0) >= 1)
    jellyfin.go_down()
    _mark_watched(service)
    started = time.monotonic()
    assert not service.drain(20.0)
    assert time.monotonic() - started < 15.0  # offline: nothing more would go out, so it does not wait it out
    assert service.status()["home"].waiting() >= 1  # still queued for the next agent or `sync`


def test_mpv_hosts_use_the_host_api_only():
    """No mpv host module reads the service's worker or queue (nor imports the CLI)."""
    import ast
    from pathlib import Path

    folder = Path(__file__).resolve().parent.parent / "plugin" / "playbacksync" / "hosts" / "mpv"
    for source in folder.glob("*.py"):
        tree = ast.parse(source.read_text())
        reached = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)} & {"worker", "queue"}
        assert not reached, f"{source.name} reaches into the service: {reached}"
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
        assert "cli" not in imported and not any(isinstance(n, ast.ImportFrom) and (n.module or "").endswith("cli")
                                                 for n in ast.walk(tree)), source.name
