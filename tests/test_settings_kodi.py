"""Kodi's settings.xml and strings.po agree with the schema; flat values become the same Config."""
import os
import re
import xml.etree.ElementTree as ET

import pytest

from playbacksync.config import PathMapping, SERVER_TYPES
from playbacksync.settings import ConfigError, config_from_flat, kodi_setting_ids
from playbacksync.settings import kodi_settings as ks
from playbacksync.settings.schema import ACTIONS, SERVER_FIELDS, SYNC_FIELDS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as fh:
        return fh.read()


def _po_ids(text):
    return {int(m) for m in re.findall(r'^msgctxt "#(\d+)"$', text, re.M)}


def test_committed_files_equal_generator_output():
    for rel, text in ks.generated_files().items():
        assert _read(rel) == text, f"{rel} is stale: run `python -m playbacksync.settings.kodi_settings`"
    assert ks.main(["--check", ROOT]) == 0


def test_every_schema_setting_and_action_is_in_settings_xml():
    root = ET.fromstring(_read(ks.SETTINGS_XML).split("\n", 2)[2])
    assert root.tag == "settings" and root.get("version") == "1"
    settings = {s.get("id"): s for s in root.iter("setting")}
    expected = set(kodi_setting_ids())
    expected |= {f"{t}_{a.key}" for a in ACTIONS if a.per_type for t in SERVER_TYPES}
    expected |= {a.key for a in ACTIONS if not a.per_type}
    assert set(settings) == expected
    # Every field is either in Kodi or says why not; same for the file.
    for f in SERVER_FIELDS + SYNC_FIELDS:
        assert f.in_kodi or len(f.kodi_reason) > 20
        assert f.in_file
    for t in SERVER_TYPES:
        assert settings[f"{t}_token"].find("visible").text == "false"
        for a in ACTIONS:
            if a.per_type:
                assert settings[f"{t}_{a.key}"].find("data").text == f"RunScript(service.playbacksync,{a.script_arg},{t})"
    assert "jellyfin_user_id" in settings and "plex_user_id" not in settings


def _kodi_action_handlers():
    """The keys of HANDLERS in hosts/kodi/actions.py (read, not imported: it needs Kodi's modules)."""
    import ast

    tree = ast.parse(_read("plugin/playbacksync/hosts/kodi/actions.py"))
    for node in ast.walk(tree):
        target = getattr(node, "target", None) or (getattr(node, "targets", None) or [None])[0]
        if isinstance(target, ast.Name) and target.id == "HANDLERS":
            return {k.value for k in node.value.keys}
    raise AssertionError("HANDLERS not found in hosts/kodi/actions.py")


def test_action_strings_match_the_kodi_host():
    """Every button in settings.xml runs an action the Kodi host handles, and every handler has a button."""
    handlers = _kodi_action_handlers()
    assert handlers == {a.script_arg for a in ACTIONS}
    root = ET.fromstring(_read(ks.SETTINGS_XML).split("\n", 2)[2])
    for s in root.iter("setting"):
        if s.get("type") != "action":
            continue
        m = re.fullmatch(r"RunScript\(service\.playbacksync,(\w+)(?:,(\w+))?\)", s.find("data").text)
        assert m and m.group(1) in handlers, s.find("data").text
        assert m.group(2) is None or m.group(2) in SERVER_TYPES
    assert {"sync", "pause", "resume"} <= handlers  # Sync now, Pause sync, Resume sync


def test_plex_has_no_user_name_setting():
    root = ET.fromstring(_read(ks.SETTINGS_XML).split("\n", 2)[2])
    ids = {s.get("id") for s in root.iter("setting")}
    assert "plex_username" not in ids and {"jellyfin_username", "emby_username"} <= ids


def test_every_label_is_defined_in_strings_po():
    xml = _read(ks.SETTINGS_XML)
    root = ET.fromstring(xml.split("\n", 2)[2])
    used = set()
    for el in root.iter():
        for attr in ("label", "help"):
            if el.get(attr):
                used.add(int(el.get(attr)))
        if el.tag == "heading":
            used.add(int(el.text))
    defined = _po_ids(_read(ks.STRINGS_PO))
    assert used and used <= defined
    assert all(30000 <= i <= 30999 for i in defined)


def _flat(**over):
    flat = {"jellyfin_enabled": True, "jellyfin_url": "https://jf.example:8920/", "jellyfin_username": "alice",
            "jellyfin_token": "tok123456789", "jellyfin_user_id": "u1",
            "jellyfin_path_mappings": "/mnt/media=>/data/media | /home/a/V => /srv/v",
            "jellyfin_verify_tls": True, "jellyfin_ca_bundle": "", "jellyfin_connect_timeout": 5.0,
            "jellyfin_read_timeout": 15.0,
            "plex_enabled": False, "plex_url": "", "emby_enabled": "false", "emby_url": "http://emby.lan:8096",
            "progress_interval": 20, "watched_percent": "85", "notifications": "all", "retention_days": 7}
    flat.update(over)
    return flat


def test_config_from_flat():
    c = config_from_flat(_flat())
    assert [(s.id, s.type, s.enabled) for s in c.servers] == [("jellyfin", "jellyfin", True), ("emby", "emby", False)]
    jf = c.server("jellyfin")
    assert jf.url == "https://jf.example:8920" and jf.token == "tok123456789" and jf.user_id == "u1"
    assert jf.path_mappings == (PathMapping("/mnt/media", "/data/media"), PathMapping("/home/a/V", "/srv/v"))
    assert (c.sync.progress_interval, c.sync.watched_percent, c.sync.notifications) == (20.0, 85.0, "all")


def test_config_from_flat_defaults_are_the_schema_defaults():
    c = config_from_flat({})
    assert c.servers == () and c.sync == type(c.sync)()
    # Kodi's getSetting gives strings; unset numbers and choices come back empty.
    c = config_from_flat({"emby_enabled": "true", "emby_url": "http://e:8096", "emby_verify_tls": "false",
                          "emby_read_timeout": "30.000000", "progress_interval": "", "notifications": ""})
    e = c.server("emby")
    assert (e.enabled, e.verify_tls, e.read_timeout) == (True, False, 30.0)
    assert c.sync == type(c.sync)()


@pytest.mark.parametrize("over,key,words", [
    ({"jellyfin_url": ""}, "Jellyfin › Server URL (jellyfin_url)", ["empty", "turn the server off"]),
    ({"jellyfin_url": "jf.example"}, "Jellyfin › Server URL (jellyfin_url)", ["not an http(s) URL"]),
    ({"jellyfin_path_mappings": "/mnt/media->/data"}, "Jellyfin › Path mappings (jellyfin_path_mappings)",
     ["is not local=>remote", "separated by |"]),
    ({"watched_percent": 10}, "Sync › Watched after (%) (watched_percent)", ["out of range"]),
    ({"notifications": "loud"}, "Sync › Notifications (notifications)", ["not one of"]),
])
def test_config_from_flat_errors_name_the_setting(over, key, words):
    with pytest.raises(ConfigError) as info:
        config_from_flat(_flat(**over))
    assert info.value.file == "Kodi add-on settings"
    assert info.value.key == key
    for w in words:
        assert w in str(info.value)
