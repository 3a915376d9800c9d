"""Run by an old or new Python with ONLY the built add-on's resources/lib (and the requests stand-in)
on sys.path (-I -S). Prints one JSON line of what it found. See tests/test_kodi_python_range.py."""
import json
import os
import shutil
import sqlite3
import sys
import time

lib, requests_lib, work, url, item_id, old_queue = sys.argv[1:7]
sys.path[:0] = [lib, requests_lib]
out = {"python": "%d.%d" % sys.version_info[:2]}

import alembic  # noqa: E402
import dataset  # noqa: E402
import requests  # noqa: E402
import sqlalchemy  # noqa: E402

import playbacksync  # noqa: E402

out["from_zip"] = all(m.__file__.startswith((lib, requests_lib))
                      for m in (alembic, dataset, requests, sqlalchemy, playbacksync))
def compiled_from_addon():
    return sorted(name for name, m in sys.modules.items() if (getattr(m, "__file__", None) or "").startswith(
        (lib, requests_lib)) and not m.__file__.endswith(".py"))


from playbacksync.changes import Change  # noqa: E402
from playbacksync.queue import SyncQueue  # noqa: E402


def revision(folder):
    con = sqlite3.connect(os.path.join(folder, "queue.sqlite"))
    try:
        return con.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    finally:
        con.close()


# 1. a new queue file is created and migrated to head
fresh = os.path.join(work, "fresh")
queue = SyncQueue(fresh)
queue.enqueue_change(Change(media_item_id="i1", source_id="s1", user_id="u", change_type="progress_update",
                            position_ms=1000, duration_ms=10000, completed=False, created_at=1.0))
claimed = queue.claim("s1")
out["claimed"] = [(c.media_item_id, c.status) for c in claimed]
out["fresh_counts"] = queue.counts()
queue.close()
out["fresh_revision"] = revision(fresh)

# 2. a queue file made by the previous release (revision 0002) is upgraded, its rows kept
old = os.path.join(work, "old")
os.makedirs(old)
shutil.copy(old_queue, os.path.join(old, "queue.sqlite"))
queue = SyncQueue(old)
out["old_counts"] = queue.counts()
queue.close()
out["old_revision"] = revision(old)

# 3. Kodi's flat settings (every id present, all strings) -> Config; sign in; 4. the service syncs
from playbacksync.settings import actions, config_from_flat, kodi_setting_ids  # noqa: E402

flat = {sid: "" for sid in kodi_setting_ids()}
flat.update(jellyfin_enabled="true", jellyfin_url=url, notifications="errors")
config = config_from_flat(flat)
server = config.server("jellyfin")
signed = actions.sign_in_password(server, "alice", "pass")
flat.update(jellyfin_username="alice", jellyfin_user_id=signed.user_id, jellyfin_token=signed.token)
config = config_from_flat(flat)
out["servers"] = [(s.id, s.type, s.url == url, bool(s.token)) for s in config.enabled_servers()]

from playbacksync.app import SyncService  # noqa: E402
from playbacksync.backends import make_backend  # noqa: E402
from playbacksync.tracker.events import ENDED, POSITION, STARTED, MediaRef, PlaybackEvent  # noqa: E402

service = SyncService(config, os.path.join(work, "service"), worker_options={"poll_interval": 0.1})
service.start()
service.wait_ready(30)
media = MediaRef(path="/media/movies/Big Buck Bunny.mkv", title="Big Buck Bunny")
service.handle(PlaybackEvent(STARTED, media=media, position=0.0, duration=596.0, at=1.0))
service.handle(PlaybackEvent(POSITION, media=media, position=120.0, duration=596.0, at=121.0))
service.handle(PlaybackEvent(ENDED, media=media, position=121.0, duration=596.0, reason="stop", at=122.0))
backend = make_backend(config.server("jellyfin"))
deadline = time.monotonic() + 60
state = backend.read_state(item_id)
while state.position_ms < 120000 and time.monotonic() < deadline:
    time.sleep(0.2)
    state = backend.read_state(item_id)
out["server_position_ms"] = state.position_ms
out["stopped_clean"] = service.stop(5.0)
out["compiled"] = compiled_from_addon()
print("RESULT " + json.dumps(out))
