"""Kodi's side of the schema: ``config_from_flat`` and the generator of
``resources/settings.xml`` (Kodi 19+ format) and ``strings.po``.

Regenerate after changing ``schema``::

    python -m playbacksync.settings.kodi_settings [--check] [REPO_ROOT]
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import xml.etree.ElementTree as ET
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ..config import SERVER_TYPES, Config, PathMapping, ServerConfig, SyncOptions
from .config_file import ConfigError, Problem, _register_tokens, check_number, check_url
from .schema import (ACTIONS, ADDON_ID, CATEGORY_LABELS, CHOICE_LABELS, FIELD_GROUPS, GROUP_LABELS,
                     SERVER_FIELDS, SYNC_FIELDS, TYPE_LABELS, Field, action_command, kodi_setting_ids)

KODI_SOURCE = "Kodi add-on settings"
SETTINGS_XML = os.path.join("resources", "settings.xml")
STRINGS_PO = os.path.join("resources", "language", "resource.language.en_gb", "strings.po")
MAPPING_SEP, MAPPING_ARROW = "|", "=>"


# -- flat values -> Config ------------------------------------------------------------

def _label(setting_id: str) -> str:
    f = kodi_setting_ids()[setting_id]
    t = setting_id.split("_", 1)[0]
    return f"{TYPE_LABELS[t]} › {f.label}" if t in TYPE_LABELS and setting_id != f.key else f"Sync › {f.label}"


def _flat_value(f: Field, sid: str, raw: Any, problems: List[Problem]) -> Any:
    key = f"{_label(sid)} ({sid})"
    if raw is None or (raw == "" and f.kind in ("bool", "int", "float", "choice")):
        return f.kodi_default if f.kodi_default is not None else f.default
    if f.kind == "bool":
        if isinstance(raw, bool):
            return raw
        if str(raw).strip().lower() in ("true", "false"):
            return str(raw).strip().lower() == "true"
        problems.append(Problem(key, f"{raw!r} is not on/off", "switch the setting on or off again"))
        return f.default
    if f.kind in ("int", "float"):
        try:
            v = float(raw)
        except (TypeError, ValueError):
            problems.append(Problem(key, f"{raw!r} is not a number", f"enter a number, e.g. {f.default}"))
            return float(f.default)
        bad = check_number(f, v)
        if bad:
            problems.append(Problem(key, bad[0], bad[1] if math.isfinite(v) else f"enter a number, e.g. {f.default}"))
        return v
    v = str(raw)
    if f.kind == "choice" and v not in f.choices:
        problems.append(Problem(key, f"{v!r} is not one of {', '.join(f.choices)}", "pick one from the list"))
        return f.default
    return v


def parse_mappings(text: str) -> Tuple[Tuple[PathMapping, ...], List[str]]:
    """``local=>remote | local2=>remote2`` -> mappings, and the parts that could not be read."""
    out, bad = [], []
    for part in (text or "").split(MAPPING_SEP):
        part = part.strip()
        if not part:
            continue
        local, arrow, remote = part.partition(MAPPING_ARROW)
        if not arrow or not local.strip() or not remote.strip():
            bad.append(part)
        else:
            out.append(PathMapping(local=local.strip(), remote=remote.strip()))
    return tuple(out), bad


def format_mappings(mappings) -> str:
    return f" {MAPPING_SEP} ".join(f"{m.local}{MAPPING_ARROW}{m.remote}" for m in mappings)


def config_from_flat(flat: Mapping[str, Any]) -> Config:
    """Kodi's flat setting values (ids from ``kodi_setting_ids``) -> Config.

    A server whose URL is empty and that is not enabled is left out. Raises
    ConfigError (file "Kodi add-on settings") naming the setting and the fix.
    """
    problems: List[Problem] = []
    servers = []
    for t in SERVER_TYPES:
        values: Dict[str, Any] = {"id": t, "type": t}
        for f in SERVER_FIELDS:
            sid = f"{t}_{f.key}"
            if not f.in_kodi or t not in f.types:
                continue
            if f.kind == "mappings":
                maps, bad = parse_mappings(str(flat.get(sid) or ""))
                for part in bad:
                    problems.append(Problem(f"{_label(sid)} ({sid})", f"{part!r} is not local=>remote",
                                            "write each mapping as /local/folder=>/server/folder, separated by |"))
                values[f.key] = maps
            else:
                values[f.key] = _flat_value(f, sid, flat.get(sid), problems)
        url = values["url"].strip()
        if not values["enabled"] and not url:
            continue
        if values["enabled"] and not url:
            problems.append(Problem(f"{_label(t + '_url')} ({t}_url)", "empty",
                                    f"enter the {TYPE_LABELS[t]} server's address, or turn the server off"))
            continue
        bad = check_url(url)
        if bad:
            problems.append(Problem(f"{_label(t + '_url')} ({t}_url)", *bad))
            continue
        values["url"] = url.rstrip("/")
        servers.append(ServerConfig(**values))
    sync = {f.key: _flat_value(f, f.key, flat.get(f.key), problems) for f in SYNC_FIELDS if f.in_kodi}
    if problems:
        raise ConfigError(KODI_SOURCE, problems)
    config = Config(servers=tuple(servers), sync=SyncOptions(**sync))
    _register_tokens(config)  # as load_config does: no log line or message may show them
    return config


# -- generator -------------------------------------------------------------------------

def _sub(parent, tag, text=None, **attrs):
    el = ET.SubElement(parent, tag, {k.rstrip("_"): str(v) for k, v in attrs.items()})
    if text is not None:
        el.text = str(text)
    return el


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _setting(group, f: Field, sid: str, enable_on: Optional[str]):
    kodi_type = {"bool": "boolean", "int": "integer", "float": "number", "path": "path"}.get(f.kind, "string")
    el = _sub(group, "setting", id=sid, type=kodi_type, label=f.label_id, help=f.help_id)
    _sub(el, "level", f.kodi_level)
    default = f.kodi_default if f.kodi_default is not None else f.default
    if f.kind == "mappings":
        default = ""
    _sub(el, "default", _fmt(default) if default not in ("", None) else None)
    if f.kodi_hidden:
        _sub(el, "visible", "false")
    cons = None
    if kodi_type in ("string", "path"):
        cons = _sub(el, "constraints")
        if f.kind == "choice":
            opts = _sub(cons, "options")
            for c in f.choices:
                _sub(opts, "option", c, label=CHOICE_LABELS[c][1])
        else:
            _sub(cons, "allowempty", "true")
        if kodi_type == "path":
            _sub(cons, "writable", "false")
    elif kodi_type in ("integer", "number"):
        cons = _sub(el, "constraints")
        _sub(cons, "minimum", _fmt(f.minimum))
        _sub(cons, "step", _fmt(f.step))
        _sub(cons, "maximum", _fmt(f.maximum))
    if enable_on:
        deps = _sub(el, "dependencies")
        _sub(deps, "dependency", "true", type="enable", setting=enable_on)
    if f.kind == "bool":
        _sub(el, "control", type="toggle")
    elif f.kind == "choice":
        c = _sub(el, "control", type="list", format="string")
        _sub(c, "heading", f.label_id)
    elif f.kind == "path":
        c = _sub(el, "control", type="button", format="file")
        _sub(c, "heading", f.label_id)
    elif f.kind == "int":
        _sub(_sub(el, "control", type="slider", format="integer"), "popup", "false")
    elif f.kind == "float":
        c = _sub(el, "control", type="edit", format="number")
        _sub(c, "heading", f.label_id)
    else:
        c = _sub(el, "control", type="edit", format="string")
        if f.kind == "secret":
            _sub(c, "hidden", "true")
        _sub(c, "heading", f.label_id)
    return el


def _action(group, action, server_type: Optional[str]):
    sid = f"{server_type}_{action.key}" if server_type else action.key
    el = _sub(group, "setting", id=sid, type="action", label=action.label_id, help=action.help_id)
    _sub(el, "level", 0)
    _sub(el, "data", action_command(action, server_type))
    cons = _sub(el, "constraints")
    _sub(cons, "allowempty", "true")
    if server_type:
        deps = _sub(el, "dependencies")
        _sub(deps, "dependency", "true", type="enable", setting=f"{server_type}_enabled")
    c = _sub(el, "control", type="button", format="action")
    _sub(c, "close", "true")


def build_settings_xml() -> str:
    root = ET.Element("settings", version="1")
    section = _sub(root, "section", id=ADDON_ID)
    for t in SERVER_TYPES:
        cat = _sub(section, "category", id=t, label=CATEGORY_LABELS[t], help="")
        groups: Dict[str, Any] = {}
        for i, gname in enumerate(GROUP_LABELS, 1):
            if gname in ("sync",):
                continue
            groups[gname] = _sub(cat, "group", id=i, label=GROUP_LABELS[gname][1])
        for f in SERVER_FIELDS:
            if f.in_kodi and t in f.types:
                enable_on = None if f.key == "enabled" else f"{t}_enabled"
                _setting(groups[FIELD_GROUPS[f.key]], f, f"{t}_{f.key}", enable_on)
        for a in ACTIONS:
            if a.per_type:
                _action(groups["actions"], a, t)
    cat = _sub(section, "category", id="sync", label=CATEGORY_LABELS["sync"], help="")
    g = _sub(cat, "group", id=1, label=GROUP_LABELS["sync"][1])
    for f in SYNC_FIELDS:
        if f.in_kodi:
            _setting(g, f, f.key, None)
    g = _sub(cat, "group", id=2, label=GROUP_LABELS["actions"][1])
    for a in ACTIONS:
        if not a.per_type:
            _action(g, a, None)
    ET.indent(root, space="  ")
    return ('<?xml version="1.0" encoding="utf-8" standalone="yes"?>\n'
            "<!-- Generated by `python -m playbacksync.settings.kodi_settings` from settings/schema.py: "
            "edit the schema, not this file. -->\n" + ET.tostring(root, encoding="unicode") + "\n")


def strings() -> Dict[int, str]:
    """Every string id the settings use -> its English text."""
    out: Dict[int, str] = {}

    def put(i: int, text: str) -> None:
        if out.get(i, text) != text:
            raise ValueError(f"string id {i} used for {out[i]!r} and {text!r}")
        out[i] = text

    for t, i in CATEGORY_LABELS.items():
        put(i, TYPE_LABELS.get(t, "Sync"))
    for text, i in GROUP_LABELS.values():
        put(i, text)
    for f in SERVER_FIELDS + SYNC_FIELDS:
        if f.in_kodi:
            put(f.label_id, f.label)
            put(f.help_id, f.help)
    for text, i in CHOICE_LABELS.values():
        put(i, text)
    for a in ACTIONS:
        put(a.label_id, a.label)
        put(a.help_id, a.help)
    return dict(sorted(out.items()))


def _po_quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def build_strings_po() -> str:
    head = [
        "# Kodi Media Center language file",
        f"# Addon id: {ADDON_ID}",
        "# Generated by `python -m playbacksync.settings.kodi_settings` from settings/schema.py.",
        'msgid ""',
        'msgstr ""',
        '"Project-Id-Version: Playback Sync\\n"',
        '"Language-Team: English (United Kingdom)\\n"',
        '"MIME-Version: 1.0\\n"',
        '"Content-Type: text/plain; charset=UTF-8\\n"',
        '"Content-Transfer-Encoding: 8bit\\n"',
        '"Language: en_GB\\n"',
        '"Plural-Forms: nplurals=2; plural=(n != 1);\\n"',
        "",
    ]
    body = []
    for i, text in strings().items():
        body += [f'msgctxt "#{i}"', f"msgid {_po_quote(text)}", 'msgstr ""', ""]
    return "\n".join(head + body)


def generated_files() -> Dict[str, str]:
    return {SETTINGS_XML: build_settings_xml(), STRINGS_PO: build_strings_po()}


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m playbacksync.settings.kodi_settings",
                                description="Write Kodi's settings.xml and strings.po from the settings schema.")
    p.add_argument("root", nargs="?", default=os.getcwd(), help="repository root (default: current folder)")
    p.add_argument("--check", action="store_true", help="only report whether the files are up to date")
    args = p.parse_args(argv)
    stale = []
    for rel, text in generated_files().items():
        path = os.path.join(args.root, rel)
        try:
            with open(path, encoding="utf-8") as fh:
                current = fh.read()
        except FileNotFoundError:
            current = None
        if current == text:
            continue
        stale.append(rel)
        if not args.check:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
            print(f"wrote {rel}")
    if args.check and stale:
        print("out of date (run `python -m playbacksync.settings.kodi_settings`): " + ", ".join(stale),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
