"""Queue schema migrations (alembic, no alembic.ini) on real files."""
import os
import sqlite3

import pytest
import sqlalchemy as sa

from playbacksync.changes import PENDING, SYNCED
from playbacksync.queue import SyncQueue, migrations

from .test_queue_support import T0, Clock, change

TABLE = "playback_sync_queue"


def engine_for(path):
    return sa.create_engine("sqlite:///" + str(path))


def run(path, fn, *args):
    engine = engine_for(path)
    try:
        with engine.begin() as conn:
            return fn(conn, *args)
    finally:
        engine.dispose()


def schema(path):
    con = sqlite3.connect(path)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    indexes = {r[0] for r in con.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'")}
    cols = [r[1] for r in con.execute(f"PRAGMA table_info({TABLE})")]
    version = None
    if "alembic_version" in tables:
        version = con.execute("SELECT version_num FROM alembic_version").fetchone()
        version = version[0] if version else None
    con.close()
    return tables, indexes, cols, version


def test_head_constant_matches_the_versions_folder():
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrations.alembic_config(None))
    assert script.get_current_head() == migrations.HEAD
    revs = [s.revision for s in script.walk_revisions()]
    assert len(revs) >= 2


def test_migrations_ship_as_packages():
    # setuptools packs *.py of packages: the folders must be packages to reach the wheel.
    here = migrations.HERE
    assert os.path.isfile(os.path.join(here, "__init__.py"))
    assert os.path.isfile(os.path.join(here, "versions", "__init__.py"))
    assert not os.path.exists(os.path.join(here, "..", "alembic.ini"))


def test_upgrade_from_empty_and_downgrade_to_empty(tmp_path):
    path = tmp_path / "q.sqlite"
    run(path, migrations.upgrade)
    tables, indexes, cols, version = schema(path)
    assert TABLE in tables and version == migrations.HEAD
    for col in ("id", "media_item_id", "source_id", "user_id", "change_type", "position_ms", "completed",
                "created_at", "last_attempt_at", "attempt_count", "error_message", "status",
                "next_attempt_at", "duration_ms", "updated_at", "resolution", "claim_owner",
                "lease_expires_at"):
        assert col in cols
    assert {"ix_queue_media_item_id", "ix_queue_source_id", "ix_queue_status", "ix_queue_key",
            "ix_queue_claim"} <= indexes

    run(path, migrations.downgrade, migrations.QUEUE_TABLE)
    tables, indexes, cols, version = schema(path)
    assert version == migrations.QUEUE_TABLE and "claim_owner" not in cols
    assert "ix_queue_claim" not in indexes and "ix_queue_status" in indexes

    run(path, migrations.downgrade)
    tables, indexes, cols, version = schema(path)
    assert TABLE not in tables and version is None


def test_schema_refuses_unknown_status_and_change_type(tmp_path):
    path = tmp_path / "q.sqlite"
    run(path, migrations.upgrade)
    con = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError):
        con.execute(f"INSERT INTO {TABLE} (media_item_id, source_id, change_type, created_at, status) "
                    "VALUES ('i', 's', 'progress_update', 0, 'lost')")
    with pytest.raises(sqlite3.IntegrityError):
        con.execute(f"INSERT INTO {TABLE} (media_item_id, source_id, change_type, created_at) "
                    "VALUES ('i', 's', 'rewind', 0)")
    con.close()


def test_a_database_with_rows_survives_the_upgrade(tmp_path):
    path = tmp_path / "queue.sqlite"
    run(path, migrations.upgrade, migrations.QUEUE_TABLE)
    con = sqlite3.connect(path)
    with con:
        con.executemany(
            f"INSERT INTO {TABLE} (media_item_id, source_id, user_id, change_type, position_ms, completed, "
            "created_at, attempt_count, status, error_message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [("a", "srv", "u", "progress_update", 1234, 0, T0 - 10, 2, "pending", "HTTP 503"),
             ("b", "srv", "u", "mark_watched", None, 1, T0 - 9, 0, "synced", None),
             ("c", "srv", "u", "mark_unwatched", None, 0, T0 - 8, 5, "failed", "HTTP 404")])
    con.close()

    q = SyncQueue(str(tmp_path), clock=Clock())      # migrates at open
    try:
        assert schema(path)[3] == migrations.HEAD
        rows = {r.media_item_id: r for r in q.rows()}
        a, b, c = rows["a"], rows["b"], rows["c"]
        assert (a.status, a.position_ms, a.attempt_count, a.error_message, a.created_at) == (
            PENDING, 1234, 2, "HTTP 503", T0 - 10)
        assert a.updated_at == T0 - 10 and a.next_attempt_at == 0 and a.duration_ms is None
        assert (b.status, b.resolution, b.completed) == (SYNCED, "applied", True)
        assert c.status == "failed" and c.error_message == "HTTP 404"
        # The old rows take part as normal rows: claimed, coalesced.
        assert [r.media_item_id for r in q.claim("srv")] == ["a"]
        q.mark_synced(a.id)
        pid = q.enqueue_change(change("P", 99, item="a", user="u"))
        assert q.get(pid).position_ms == 99
    finally:
        q.close()


def test_open_is_a_no_op_when_at_head(tmp_path):
    q = SyncQueue(str(tmp_path))
    q.enqueue_change(change("P"))
    q.close()
    engine = engine_for(tmp_path / "queue.sqlite")
    try:
        with engine.begin() as conn:
            assert migrations.upgrade(conn) is False
            assert migrations.current_revision(conn) == migrations.HEAD
    finally:
        engine.dispose()


def test_a_file_at_revision_0002_keeps_its_rows_and_takes_media_references(tmp_path):
    """0003 (record first): media_item_id becomes nullable, references and send columns are added;
    rows of a real 0002 file keep their ids, states and coalescing (keyed by their item)."""
    from playbacksync.changes import Change
    from playbacksync.tracker.events import MediaRef

    path = tmp_path / "queue.sqlite"
    run(path, migrations.upgrade, migrations.WORKER_COLUMNS)
    con = sqlite3.connect(path)
    with con:
        con.executemany(
            f"INSERT INTO {TABLE} (media_item_id, source_id, user_id, change_type, position_ms, duration_ms, "
            "completed, created_at, updated_at, attempt_count, status, next_attempt_at, claim_owner, "
            "lease_expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [("a", "srv", "u", "progress_update", 1234, 5000, 0, T0 - 10, T0 - 10, 1, "pending", 0, None, None),
             ("b", "srv", "u", "mark_watched", None, None, 1, T0 - 9, T0 - 9, 0, "syncing", 0, "h:1:x", T0 - 1)])
        con.execute(f"DELETE FROM {TABLE} WHERE id = 2")  # a gap: ids must survive the table rebuild
        con.execute(
            f"INSERT INTO {TABLE} (media_item_id, source_id, user_id, change_type, completed, created_at, "
            "updated_at, attempt_count, status, next_attempt_at) VALUES ('c', 'srv', 'u', 'mark_watched', 1, ?, ?, "
            "0, 'failed', 0)", (T0 - 8, T0 - 8))
    con.close()
    q = SyncQueue(str(tmp_path), clock=Clock())
    try:
        assert schema(path)[3] == migrations.HEAD
        rows = {r.id: r for r in q.rows()}
        assert sorted(rows) == [1, 3]
        a, c = rows[1], rows[3]
        assert (a.media_item_id, a.position_ms, a.duration_ms, a.attempt_count, a.media_key) == (
            "a", 1234, 5000, 1, "item:a")
        assert a.media.path == "" and a.sent_at is None and a.unsure_until == 0.0
        assert (c.status, c.media_key) == ("failed", "item:c")
        # Old rows still coalesce by their item: a new watched closes the failed one of item c.
        q.enqueue_change(change("W", item="c", user="u"))
        assert q.get(3).resolution == "superseded"
        # And a change recorded against a reference only (no item yet) is now accepted.
        rid = q.enqueue_change(Change(media_item_id=None, source_id="srv", user_id="u", change_type="mark_watched",
                                      media=MediaRef(path="/m/new.mkv", title="New"), created_at=T0))
        assert q.get(rid).media_item_id is None and q.get(rid).media.title == "New"
        assert q.get(rid).id > 3  # AUTOINCREMENT kept: ids are never reused
    finally:
        q.close()
    con = sqlite3.connect(path)
    assert con.execute(f"SELECT sql FROM sqlite_master WHERE name = '{TABLE}'").fetchone()[0].count("AUTOINCREMENT")
    con.close()
