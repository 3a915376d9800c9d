"""Install Playback Sync into real Kodi from its repository over loopback HTTP, then update it.

`kodi_repo.build` makes the repository folder (with a script.module.requests built for the test,
since Debian's Kodi has none); python's http.server serves it on 127.0.0.1. Kodi gets only the
repository add-on (as "Install from zip file" would unpack it), installs service.playbacksync
and its dependency from the repository, runs it, and after a second build with a newer version
updates it by itself (automatic add-on updates on). The settings and the queue, which live in
the profile's addon_data, survive the update: a change held back before it is sent after it.
"""
from __future__ import annotations

import functools
import sqlite3
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from playbacksync import kodi_repo
from tests.fakes.jellyfin import JellyfinFake
from tests.kodi.harness import (YES_NO_DIALOG, KodiRun, current_window, missing_tools, requests_module_zip,
                                stop_and_wait_end, wait_for)
from tests.media import make_clip

pytestmark = [pytest.mark.kodi, pytest.mark.slow, pytest.mark.timeout(400)]

ADDON_ID = "service.playbacksync"
ROOT = Path(__file__).resolve().parents[2]
TICKS = 10_000_000

if missing_tools():
    pytest.skip(f"real-Kodi tests need {missing_tools()}", allow_module_level=True)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def addon_version(kodi, addon_id):
    try:
        details = kodi.rpc("Addons.GetAddonDetails", {"addonid": addon_id, "properties": ["version", "enabled"]})
    except Exception:
        return None
    addon = details.get("addon") or {}
    return addon.get("version") if addon.get("enabled") else None


def answer_yes(kodi):
    """Kodi asks "install this add-on?": move the focus to Yes and press it."""
    wait_for(lambda: current_window(kodi) == YES_NO_DIALOG, 20, "the install question", kodi=kodi)
    time.sleep(0.6)  # its opening animation: keys sent during it are dropped
    for _ in range(3):
        focused = kodi.rpc("XBMC.GetInfoLabels", {"labels": ["System.CurrentControl"]})["System.CurrentControl"]
        if focused.strip().lower() == "yes":
            break
        kodi.rpc("Input.Left" if focused.strip().lower() == "no" else "Input.Right")
        time.sleep(0.3)
    kodi.rpc("Input.Select")


def test_install_and_update_from_the_repository(tmp_path):
    media = tmp_path / "media"
    clip = make_clip(media, 20, name="Clip")
    jf = JellyfinFake(version="10.10.7").start()
    uid = jf.add_user("alice", "pass")
    token = jf.issue_token(uid)
    item = jf.add_item("Clip", path=str(clip), runtime_s=20)

    repo = tmp_path / "repo"
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(repo)))
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    extra = [requests_module_zip(tmp_path / "extra", ROOT)]
    kodi_repo.build(url, repo, extra=extra, version="0.1.0")
    server = threading.Thread(target=httpd.serve_forever, daemon=True)
    server.start()

    kodi = KodiRun(tmp_path / "run", gui_settings={"general.addonupdates": "0"})  # updates installed by Kodi
    try:
        kodi.add_video_source("Media", media)
        kodi.install_zip(repo / kodi_repo.REPO_ID / f"{kodi_repo.REPO_ID}-{kodi_repo.REPO_VERSION}.zip")
        kodi.install_builtin_runner()
        # The viewer's settings (this profile's), and sending held back so a change waits in the queue.
        kodi.seed_addon_settings(ADDON_ID, {"jellyfin_enabled": "true", "jellyfin_url": jf.url,
                                            "jellyfin_username": "alice", "jellyfin_token": token,
                                            "jellyfin_user_id": uid, "progress_interval": "2"})
        data = kodi.addon_data(ADDON_ID)
        (data / "paused.json").write_text('{"paused": ["*"]}')
        kodi.start()
        for addon in (kodi_repo.REPO_ID, "script.test.builtin"):
            kodi.rpc("Addons.SetAddonEnabled", {"addonid": addon, "enabled": True})
        try:  # Kodi's "new add-ons found, enable?" at start
            wait_for(lambda: current_window(kodi) == YES_NO_DIALOG, 4, "the enable question")
            kodi.rpc("Input.Back")
            wait_for(lambda: current_window(kodi) != YES_NO_DIALOG, 5, "the enable question to close")
        except AssertionError:
            pass
        assert not (kodi.addons / ADDON_ID).exists()

        kodi.builtin("UpdateAddonRepos")
        wait_for(lambda: "service.playbacksync" in str(kodi.rpc("Addons.GetAddons", {"installed": False})),
                 30, "the repository's add-ons to be known", kodi=kodi)
        for attempt in range(3):  # a dialog still closing can swallow the key press: ask again then
            kodi.builtin(f"InstallAddon({ADDON_ID})")
            answer_yes(kodi)
            try:
                wait_for(lambda: addon_version(kodi, ADDON_ID) == "0.1.0", 40,
                         "the add-on installed from the repository", kodi=kodi)
                break
            except AssertionError:
                if attempt == 2:
                    raise
        assert addon_version(kodi, "script.module.requests") == "2.32.3"  # the dependency, from the repository
        wait_for(lambda: "version 0.1.0 starting" in kodi.log_text(), 30, "the service to start", kodi=kodi)
        assert f"from {kodi.addons}/script.module.requests/lib/requests" in kodi.log_text()

        # A viewing while paused: recorded in the queue, not sent.
        mark = kodi.rpc_client.mark()
        kodi.rpc("Player.Open", {"item": {"file": str(clip)}})
        kodi.rpc_client.wait_notification("Player.OnAVStart", mark, timeout=20)
        time.sleep(4)
        stopped = stop_and_wait_end(kodi)

        def pending_rows():
            if not (data / "queue.sqlite").exists():
                return 0
            con = sqlite3.connect(f"file:{data / 'queue.sqlite'}?mode=ro", uri=True)  # never creates it
            try:
                return con.execute("SELECT count(*) FROM playback_sync_queue WHERE status = 'pending'").fetchone()[0]
            except sqlite3.OperationalError:  # not made yet
                return 0
            finally:
                con.close()
        wait_for(pending_rows, 30, "the change to wait in the queue", kodi=kodi)
        held = pending_rows()
        settings_before = (data / "settings.xml").read_text()
        assert jf.user_data(uid, item).position_ticks == 0

        # A newer build in the repository: Kodi updates the add-on by itself.
        kodi_repo.build(url, repo, extra=extra, version="0.1.1")
        kodi.builtin("UpdateAddonRepos")
        wait_for(lambda: addon_version(kodi, ADDON_ID) == "0.1.1", 90, "the update to 0.1.1", kodi=kodi)
        wait_for(lambda: "version 0.1.1 starting" in kodi.log_text(), 30, "the updated service to start", kodi=kodi)
        assert pending_rows() == held  # the queue survived the update
        after = (data / "settings.xml").read_text()
        for value in (jf.url, uid, token):
            assert value in settings_before and value in after  # and the settings too

        (data / "paused.json").write_text('{"paused": []}')  # resume: the held change now reaches the server
        wait_for(lambda: abs(jf.user_data(uid, item).position_ticks / TICKS - stopped) < 1.0, 20,
                 "the change held before the update to reach Jellyfin", kodi=kodi)
        assert "Traceback" not in kodi.log_text()
        assert jf.violations == []
    finally:
        kodi.quit()
        kodi.kill()
        httpd.shutdown()
        jf.stop(check=False)
