"""Two Kodi profiles, two Jellyfin servers: each profile has its own settings, tokens and queue.

The master profile's settings point at server A, the second profile's at server B (each with
its own token). What is played in one profile reaches only that profile's server, and its
queue file lives in that profile's addon_data; switching profiles never sends one profile's
changes to the other's server.

Both profiles open on Videos rather than Home: Debian's Kodi 20.1 hung in Home's widget jobs right
after a profile load in two of five runs here (the add-on already stopped); never since.
"""
from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path

import pytest

from playbacksync import kodi_zip
from tests.fakes.jellyfin import JellyfinFake
from tests.kodi.harness import (YES_NO_DIALOG, KodiError, KodiRun, current_window, missing_tools, play_from,
                                stop_and_wait_end, wait_for)
from tests.media import make_clip

pytestmark = [pytest.mark.kodi, pytest.mark.slow, pytest.mark.timeout(400)]

ADDON_ID = "service.playbacksync"
TICKS = 10_000_000

if missing_tools():
    pytest.skip(f"real-Kodi tests need {missing_tools()}", allow_module_level=True)


def enable_addons(kodi):
    for addon in ("script.module.requests", ADDON_ID):
        kodi.rpc("Addons.SetAddonEnabled", {"addonid": addon, "enabled": True})
    try:  # Kodi's "new add-ons found, enable?" question
        wait_for(lambda: current_window(kodi) == YES_NO_DIALOG, 3, "the enable question")
        kodi.rpc("Input.Back")
    except AssertionError:
        pass


def play_and_stop(kodi, clip, seek_to):
    """Play, seek, stop; returns where the host says the viewing ended."""
    play_from(kodi, clip, seek_to, play_for=2.0)
    return stop_and_wait_end(kodi)


def load_profile(kodi, name):
    starts = kodi.log_text().count("starting sync; servers:")
    try:
        kodi.rpc("Profiles.LoadProfile", {"profile": name, "prompt": False}, timeout=10)
    except KodiError:
        pass  # the connection may close while Kodi switches
    time.sleep(2)
    kodi.reconnect(40)
    wait_for(lambda: kodi.rpc("Profiles.GetCurrentProfile")["label"] == name, 30, f"profile {name}", kodi=kodi)
    return starts


def rows(queue_file: Path):
    con = sqlite3.connect(f"file:{queue_file}?mode=ro", uri=True)
    try:
        return con.execute("SELECT count(*) FROM playback_sync_queue").fetchone()[0]
    finally:
        con.close()


def test_each_profile_syncs_to_its_own_servers_only(tmp_path):
    media = tmp_path / "media"
    clip = make_clip(media, 30, name="Clip")
    servers, users, tokens, items = {}, {}, {}, {}
    for name in ("A", "B"):
        servers[name] = JellyfinFake(version="10.10.7").start()
        users[name] = servers[name].add_user("alice", "pass")
        tokens[name] = servers[name].issue_token(users[name])
        items[name] = servers[name].add_item("Clip", path=str(clip), runtime_s=30)

    def position(name):
        return servers[name].user_data(users[name], items[name]).position_ticks / TICKS

    kodi = KodiRun(tmp_path / "run", gui_settings={"lookandfeel.startupwindow": "10025"})  # see add_profiles
    try:
        kodi.add_video_source("Media", media)
        kodi.install_zip(kodi_zip.build(tmp_path / "dist"))
        kodi.install_requests_module()
        second = kodi.add_profiles("Second")["Second"]
        for folder, name in ((None, "A"), (second, "B")):
            kodi.seed_addon_settings(ADDON_ID, {
                "jellyfin_enabled": "true", "jellyfin_url": servers[name].url, "jellyfin_username": "alice",
                "jellyfin_token": tokens[name], "jellyfin_user_id": users[name], "progress_interval": "2"},
                userdata=folder)
        kodi.start()
        enable_addons(kodi)
        wait_for(lambda: servers["A"].url in kodi.log_text(), 30, "the master profile's service", kodi=kodi)

        a_at = play_and_stop(kodi, clip, 8)
        wait_for(lambda: abs(position("A") - a_at) < 1.0, 15, "A to hold the master profile's position", kodi=kodi)
        assert position("B") == 0

        starts = load_profile(kodi, "Second")
        enable_addons(kodi)  # a profile with its own databases keeps its own add-on states
        wait_for(lambda: kodi.log_text().count("starting sync; servers:") > starts, 30,
                 "the service in the second profile", kodi=kodi)
        starts_log = kodi.log_text().rsplit("starting sync; servers:", 1)[-1].splitlines()[0]
        assert servers["B"].url in starts_log and servers["A"].url not in starts_log, starts_log
        assert str(second / "addon_data" / ADDON_ID) in starts_log, starts_log

        b_at = play_and_stop(kodi, clip, 16)
        wait_for(lambda: abs(position("B") - b_at) < 1.0, 15, "B to hold the second profile's position", kodi=kodi)
        assert abs(position("A") - a_at) < 1.0, "the second profile's viewing reached the master's server"

        # Back to the master profile: its service starts with its own settings and queue again.
        starts = load_profile(kodi, "Master user")
        enable_addons(kodi)
        wait_for(lambda: kodi.log_text().count("starting sync; servers:") > starts, 30,
                 "the master profile's service again", kodi=kodi)
        starts_log = kodi.log_text().rsplit("starting sync; servers:", 1)[-1].splitlines()[0]
        assert servers["A"].url in starts_log and servers["B"].url not in starts_log, starts_log
        wait_for(lambda: "sync online jellyfin" in kodi.log_text().rsplit("starting sync; servers:", 1)[-1], 20,
                 "the master profile's worker to reach A", kodi=kodi)
        assert kodi.quit() == 0
        assert abs(position("A") - a_at) < 1.0 and abs(position("B") - b_at) < 1.0
        master_queue = kodi.addon_data(ADDON_ID) / "queue.sqlite"
        second_queue = second / "addon_data" / ADDON_ID / "queue.sqlite"
        assert master_queue.is_file() and second_queue.is_file() and rows(master_queue) and rows(second_queue)
        assert tokens["B"] not in (kodi.addon_data(ADDON_ID) / "settings.xml").read_text()
        assert tokens["A"] not in (second / "addon_data" / ADDON_ID / "settings.xml").read_text()
        assert servers["A"].violations == [] and servers["B"].violations == []
        assert "Traceback" not in kodi.log_text()
    finally:
        code = kodi.quit()
        kodi.kill()
        if code not in (0, None):
            sys.stderr.write(kodi.log_text()[-4000:])
        for fake in servers.values():
            fake.stop(check=False)
