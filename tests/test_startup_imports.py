"""The player's process pays for heavy imports only when it uses them (bench P1).

Each check runs in a fresh interpreter and reads ``sys.modules`` after the work.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

PLUGIN = str(Path(__file__).resolve().parent.parent / "plugin")


def _modules_after(code: str, tmp_path, **env) -> set:
    script = textwrap.dedent(code) + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=PLUGIN, PLAYBACK_SYNC_DATA_DIR=str(tmp_path / "data"),
                                  XDG_STATE_HOME=str(tmp_path / "state"), **env))
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_logging_config_and_worker_without_servers_do_not_import_requests(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[sync]\nprogress_interval = 10\n')
    mods = _modules_after(f"""
        import logging
        from playbacksync import cli
        from playbacksync.settings import load_config
        from playbacksync.worker import SyncWorker
        cli.setup_logging(False)
        logging.getLogger("playbacksync.test").warning("a record with X-Plex-Token=abcdef123")
        load_config({str(config)!r})
    """, tmp_path)
    assert "playbacksync.worker.lane" in mods and "playbacksync.redact" in mods
    assert "requests" not in mods
    assert "playbacksync.backends.http" not in mods


def test_redaction_is_shared_with_the_http_layer():
    from playbacksync import redact as core
    from playbacksync.backends import http

    assert http.redact is core.redact and http.register_secret is core.register_secret
    http.register_secret("shared-secret-value")
    assert core.redact("x shared-secret-value y") == "x *** y"


_QUEUE_WORK = """
    from playbacksync.changes import Change
    from playbacksync.queue import SyncQueue
    q = SyncQueue()
    q.enqueue_change(Change(media_item_id="item", source_id="srv", user_id="u", change_type="progress_update",
                            position_ms=1000, created_at=0))
    assert [c.media_item_id for c in q.claim("srv")] == ["item"]
    q.close()
"""


def test_a_queue_at_head_opens_without_dataset_sqlalchemy_or_alembic(tmp_path):
    first = _modules_after(_QUEUE_WORK, tmp_path)
    assert {"alembic", "dataset", "sqlalchemy"} <= first  # a new file is created by the migrations

    again = _modules_after(_QUEUE_WORK, tmp_path)
    assert not {"alembic", "dataset", "sqlalchemy", "mako"} & again

    import sqlite3

    from playbacksync.queue import migrations

    con = sqlite3.connect(tmp_path / "data" / "queue.sqlite")
    try:
        assert con.execute("SELECT version_num FROM alembic_version").fetchone()[0] == migrations.HEAD
        assert con.execute("SELECT count(*) FROM playback_sync_queue").fetchone()[0] >= 1
    finally:
        con.close()
