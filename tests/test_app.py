"""SyncService: playback events in, server state out (real queue file, real worker, spec-validating fake)."""
import sqlite3
import time

import pytest

from playbacksync.app import SyncService
from playbacksync.config import Config, PathMapping, ServerConfig, SyncOptions
from playbacksync.tracker.events import ENDED, PAUSED, POSITION, STARTED, MediaRef, PlaybackEvent
from tests.fakes.jellyfin import JellyfinFake
from tests.fakes.mediabrowser import TICKS_PER_SECOND


@pytest.fixture
def jellyfin():
    with JellyfinFake(version="10.11.11") as fake:
        fake.uid = fake.add_user("alice", "pass")
        fake.token = fake.issue_token(fake.uid)
        fake.iid = fake.add_item("Clip", path="/srv/media/clip.mkv", runtime_s=600)
        yield fake


def make_service(fake, tmp_path, **kw):
    server = ServerConfig(id="home", type="jellyfin", url=fake.url, token=fake.token, user_id=fake.uid,
                          path_mappings=(PathMapping("/mnt/media", "/srv/media"),))
    config = Config(servers=(server,), sync=SyncOptions(progress_interval=10))
    service = SyncService(config, str(tmp_path / "data"), **kw)
    messages = []
    service.subscribe(messages.append)
    service.start()
    assert service.wait_ready(10)
    return service, messages


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def play(service, path, positions, end_reason, duration=600.0):
    media = MediaRef(path=path, title="clip", entry_key="1")
    service.handle(PlaybackEvent(STARTED, media=media, position=0.0, duration=duration, at=0.0))
    for at, pos in positions:
        service.handle(PlaybackEvent(POSITION, media=media, position=pos, duration=duration, at=at))
    last_at, last_pos = positions[-1]
    service.handle(PlaybackEvent(ENDED, media=media, position=last_pos, duration=duration, reason=end_reason,
                                 at=last_at + 0.1))


def test_played_to_the_end_is_watched_on_the_server(jellyfin, tmp_path):
    service, _ = make_service(jellyfin, tmp_path)
    try:
        play(service, "/mnt/media/clip.mkv", [(t, t * 10.0) for t in range(1, 61)], "eof")
        assert wait_for(lambda: jellyfin.user_data(jellyfin.uid, jellyfin.iid).played)
    finally:
        assert service.stop(3.0)
    assert jellyfin.user_data(jellyfin.uid, jellyfin.iid).play_count == 1


def test_stop_flushes_the_last_position_even_if_the_worker_had_no_time(jellyfin, tmp_path):
    service, _ = make_service(jellyfin, tmp_path)
    media = MediaRef(path="/mnt/media/clip.mkv", entry_key="1")
    service.handle(PlaybackEvent(STARTED, media=media, position=0.0, duration=600.0, at=0.0))
    service.handle(PlaybackEvent(PAUSED, media=media, position=240.0, duration=600.0, at=5.0))
    service.stop(3.0)
    # Whatever the worker managed before stop, the pause is either on the server or in the queue.
    from playbacksync.queue import SyncQueue
    q = SyncQueue(str(tmp_path / "data"))
    rows = q.rows()
    q.close()
    on_server = jellyfin.user_data(jellyfin.uid, jellyfin.iid).position_ticks == 240 * TICKS_PER_SECOND
    queued = [r.position_ms for r in rows if r.status == "pending"]
    assert on_server or queued == [240_000]


def test_unidentified_file_sends_nothing_and_says_why_once(jellyfin, tmp_path):
    service, messages = make_service(jellyfin, tmp_path)
    try:
        play(service, "/elsewhere/clip.mkv", [(t, t * 10.0) for t in range(1, 61)], "eof")
        assert wait_for(lambda: any(m.kind == "not_identified" for m in messages))
        time.sleep(0.3)
    finally:
        service.stop(3.0)
    told = [m for m in messages if m.kind == "not_identified"]
    assert len(told) == 1 and told[0].source_id == "home" and "mapping" in told[0].message
    assert not any(r.method in ("POST", "DELETE") for r in jellyfin.requests)


def test_change_made_while_the_queue_is_locked_is_kept_and_saved_later(jellyfin, tmp_path):
    service, messages = make_service(jellyfin, tmp_path, queue_options={"busy_timeout": 0.1})
    lock = sqlite3.connect(str(tmp_path / "data" / "queue.sqlite"), timeout=5, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # another process holds the write lock past the busy timeout
    try:
        play(service, "/mnt/media/clip.mkv", [(t, t * 10.0) for t in range(1, 61)], "eof")
        assert wait_for(lambda: any(m.kind == "failed" and "could not be saved" in m.message for m in messages))
        # (the server may already have the end from the live session's own report: not the queue's doing)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    try:
        # kept in memory, then written to the queue once the lock is gone, and sent
        assert wait_for(lambda: sum(service.status()["home"].counts.values()) >= 1)
        assert wait_for(lambda: jellyfin.user_data(jellyfin.uid, jellyfin.iid).played)
    finally:
        service.stop(3.0)


def test_handle_never_raises_and_is_cheap_on_the_player_thread(jellyfin, tmp_path):
    service, _ = make_service(jellyfin, tmp_path)
    try:
        service.handle(PlaybackEvent("nonsense-kind"))
        service.handle(PlaybackEvent(POSITION, position=float("nan")))
        jellyfin.delay(2.0, times=5)  # a slow server must not slow the player's thread
        t0 = time.monotonic()
        play(service, "/mnt/media/clip.mkv", [(t, t * 10.0) for t in range(1, 61)], "eof")
        assert time.monotonic() - t0 < 1.0  # each request to the server takes 2 s: handle() waited for none
    finally:
        service.stop(3.0)


class SlowListingJellyfin(JellyfinFake):
    """The server's item list (the first index refresh) takes seconds."""

    listing_delay = 3.0

    def list_items(self, req):
        time.sleep(self.listing_delay)
        return super().list_items(req)


def test_changes_not_identified_by_quit_are_recorded_and_sent_at_next_start(tmp_path):
    """Issue 11: a viewing was dropped when identification could not finish (first item list slower
    than the timeouts). Now every change is in the queue the moment it is made, before identification."""
    with SlowListingJellyfin(version="10.11.11") as fake:
        fake.uid = fake.add_user("alice", "pass")
        fake.token = fake.issue_token(fake.uid)
        fake.iid = fake.add_item("Clip", path="/srv/media/clip.mkv", runtime_s=600)
        service, _ = make_service(fake, tmp_path)
        play(service, "/mnt/media/clip.mkv", [(t, t * 10.0) for t in range(1, 61)], "eof")
        service.stop(3.0, flush_timeout=0.2)  # quit long before the item list arrives
        assert service.unrecorded() == (0, "")
        assert not list((tmp_path / "data").glob("unqueued-changes.jsonl*"))  # no journal any more
        con = sqlite3.connect(str(tmp_path / "data" / "queue.sqlite"))
        rows = con.execute("SELECT change_type, status, media_item_id, media_path, media_title "
                           "FROM playback_sync_queue WHERE status = 'pending'").fetchall()
        con.close()
        assert ("mark_watched", "pending", None, "/mnt/media/clip.mkv", "clip") in rows
        assert not fake.user_data(fake.uid, fake.iid).played
        fake.listing_delay = 0.0
        service, _ = make_service(fake, tmp_path)  # the next start identifies and sends them
        try:
            assert wait_for(lambda: fake.user_data(fake.uid, fake.iid).played)
            assert wait_for(lambda: not service.queue.rows("home", ("pending", "syncing")))
        finally:
            service.stop(3.0)
        assert fake.user_data(fake.uid, fake.iid).play_count == 1


def test_a_refresh_that_failed_just_before_does_not_drop_the_viewing(tmp_path):
    """Issue 11: a miss right after a failed (or stopped) refresh could not refresh again within a
    minute, and the viewing was discarded. Now it waits to identify and goes out after the next refresh."""
    with SlowListingJellyfin(version="10.11.11") as fake:
        fake.listing_delay = 0.0
        fake.uid = fake.add_user("alice", "pass")
        fake.token = fake.issue_token(fake.uid)
        fake.iid = fake.add_item("Clip", path="/srv/media/clip.mkv", runtime_s=600)
        fake.fail_next(503, times=3)  # the start's refresh fails
        service, messages = make_service(fake, tmp_path)
        try:
            assert wait_for(lambda: service.identifier.index.info("home").last_error is not None)
            play(service, "/mnt/media/clip.mkv", [(t, t * 10.0) for t in range(1, 61)], "eof")
            assert wait_for(lambda: any(r.error_message and r.error_message.startswith("waiting to identify")
                                        for r in service.queue.rows("home", ("pending",))))
            assert service.identifier.refresh("home") == {"home": None}  # the index is refreshed: tried at once
            assert wait_for(lambda: fake.user_data(fake.uid, fake.iid).played)
        finally:
            service.stop(3.0)
        assert fake.user_data(fake.uid, fake.iid).play_count == 1


def test_play_that_cannot_record_says_so(jellyfin, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "queue.sqlite").mkdir()  # the queue's file name is taken by a folder: the queue cannot open
    server = ServerConfig(id="home", type="jellyfin", url=jellyfin.url, token=jellyfin.token,
                          user_id=jellyfin.uid, path_mappings=(PathMapping("/mnt/media", "/srv/media"),))
    service = SyncService(Config(servers=(server,)), str(data))
    messages = []
    service.subscribe(messages.append)
    service.start()
    with pytest.raises(Exception):
        service.wait_ready(10)
    play(service, "/mnt/media/clip.mkv", [(t, t * 10.0) for t in range(1, 61)], "eof")
    service.stop(3.0)
    assert any(m.kind == "failed" and "sync is off" in m.message for m in messages)
    lost, why = service.unrecorded()
    assert lost >= 2 and "queue" in why  # the positions and the watched mark, and the queue's reason


def _old_journal_line(path, kind="tracked"):
    import json

    if kind == "tracked":
        return json.dumps({"kind": "tracked", "media": {"path": path, "title": "clip", "provider_ids": {},
                                                       "entry_key": "1"},
                           "change_type": "mark_watched", "position_ms": None, "duration_ms": 600000,
                           "created_at": time.time() - 60})
    return "{\"kind\": \"tracked\", \"media\": {\"pa"  # cut by a crash mid-write


def test_an_orphaned_journal_of_an_older_version_is_queued_once(jellyfin, tmp_path):
    """Issue 11: a start killed after claiming the journal (renamed .<pid>) left a file no start read.
    Now any such file, and the unclaimed one, is imported into the queue at start, each exactly once."""
    data = tmp_path / "data"
    data.mkdir()
    orphan = data / "unqueued-changes.jsonl.4242"
    orphan.write_text(_old_journal_line("/mnt/media/clip.mkv") + "\n" + _old_journal_line("", "cut") + "\n")
    kept = orphan.read_bytes()
    service, messages = make_service(jellyfin, tmp_path)
    try:
        assert wait_for(lambda: jellyfin.user_data(jellyfin.uid, jellyfin.iid).played)
        assert not orphan.exists()
        assert any(m.kind == "failed" and "could not be read" in m.message for m in messages)  # the cut line
    finally:
        service.stop(3.0)
    # Killed after the import's commit but before the file was removed: the next start must not send it again.
    orphan.write_bytes(kept)
    service, _ = make_service(jellyfin, tmp_path)
    try:
        assert wait_for(lambda: not orphan.exists())
        assert not service.queue.rows("home", ("pending", "syncing"))
    finally:
        service.stop(3.0)
    assert jellyfin.user_data(jellyfin.uid, jellyfin.iid).play_count == 1


def test_unsubscribed_callback_hears_nothing_more(jellyfin, tmp_path):
    service, kept = make_service(jellyfin, tmp_path)
    dropped = []
    unsubscribe = service.subscribe(dropped.append)
    unsubscribe()
    try:
        play(service, "/mnt/media/clip.mkv", [(t, t * 10.0) for t in range(1, 61)], "eof")
        # watched on the server (by the live session or the queue, whichever came first)
        assert wait_for(lambda: jellyfin.user_data(jellyfin.uid, jellyfin.iid).played), [(m.kind, m.message) for m in kept]
        assert kept  # the subscribed callback heard the service
    finally:
        service.stop(3.0)
    assert dropped == []


def test_reload_while_playing_sends_to_the_server_added_and_keeps_the_viewing(jellyfin, tmp_path):
    """Settings saved during playback apply at once: a server added then gets the file's changes."""
    server = ServerConfig(id="home", type="jellyfin", url=jellyfin.url, token=jellyfin.token,
                          user_id=jellyfin.uid, path_mappings=(PathMapping("/elsewhere", "/srv/media"),))
    service = SyncService(Config(servers=(server,)), str(tmp_path / "data"))
    messages = []
    service.subscribe(messages.append)
    service.start()
    assert service.wait_ready(10)
    media = MediaRef(path="/mnt/media/clip.mkv", entry_key="1")
    try:
        service.handle(PlaybackEvent(STARTED, media=media, position=0.0, duration=600.0, at=0.0))
        service.handle(PlaybackEvent(POSITION, media=media, position=100.0, duration=600.0, at=100.0))
        assert wait_for(lambda: any(m.kind == "not_identified" for m in messages))
        fixed = ServerConfig(id="home", type="jellyfin", url=jellyfin.url, token=jellyfin.token,
                             user_id=jellyfin.uid, path_mappings=(PathMapping("/mnt/media", "/srv/media"),))
        service.reload(Config(servers=(fixed,), sync=SyncOptions(progress_interval=10, retention_days=3)))
        assert wait_for(lambda: service.queue.retention_days == 3.0)
        # The same viewing goes on: no new STARTED, and it ends watched on the server.
        for at in range(110, 601, 10):
            service.handle(PlaybackEvent(POSITION, media=media, position=float(at), duration=600.0, at=float(at)))
        service.handle(PlaybackEvent(ENDED, media=media, position=600.0, duration=600.0, reason="eof", at=601.0))
        assert wait_for(lambda: jellyfin.user_data(jellyfin.uid, jellyfin.iid).played), \
            [(r.id, r.status, r.change_type, r.media_item_id, r.error_message, r.next_attempt_at - time.time())
             for r in service.queue.rows()]
    finally:
        service.stop(3.0)
    assert jellyfin.user_data(jellyfin.uid, jellyfin.iid).play_count == 1


def test_a_viewing_shows_on_the_servers_dashboard_while_it_plays(jellyfin, tmp_path):
    # Live sessions: the server sees the player as "now playing" (one PlaySessionId), until it stops;
    # the queue still records the viewing, and the play is counted once.
    service, _ = make_service(jellyfin, tmp_path)
    media = MediaRef(path="/mnt/media/clip.mkv", title="clip", entry_key="1")
    try:
        service.handle(PlaybackEvent(STARTED, media=media, position=0.0, duration=600.0, at=0.0))
        service.handle(PlaybackEvent(POSITION, media=media, position=40.0, duration=600.0, at=40.0))
        assert wait_for(lambda: any(s["item"] == jellyfin.iid for s in jellyfin.now_playing.values()))
        service.handle(PlaybackEvent(PAUSED, media=media, position=300.0, duration=600.0, at=41.0))
        service.handle(PlaybackEvent(ENDED, media=media, position=300.0, duration=600.0, reason="quit", at=42.0))
        assert wait_for(lambda: not jellyfin.now_playing)
        assert wait_for(lambda: jellyfin.user_data(jellyfin.uid, jellyfin.iid).position_ticks == 300 * TICKS_PER_SECOND)
    finally:
        assert service.stop(3.0)
    ids = {s.get("PlaySessionId") for s in jellyfin.sessions}
    assert len(ids) == 1 and None not in ids
    d = jellyfin.user_data(jellyfin.uid, jellyfin.iid)
    assert (d.play_count, d.played) == (1, False)  # as the server's own client: its start counts a play
