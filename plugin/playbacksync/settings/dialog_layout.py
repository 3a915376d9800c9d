"""The settings dialog's widgets (`playback-sync settings`): built once, onto the dialog.

Kept apart from settings/dialog.py, which holds what the widgets do; every widget
and variable the dialog works with is set here as an attribute of the dialog.
"""
from __future__ import annotations

from typing import Any, Dict

from ..config import SERVER_TYPES, Config, ServerConfig
from .schema import NOTIFICATION_CHOICES, SYNC_FIELDS

NEW_SERVER = {"id": "", "type": "jellyfin", "url": "", "username": "", "token": "", "user_id": "",
              "enabled": True, "verify_tls": True, "ca_bundle": "", "device_id": "", "path_mappings": [],
              "connect_timeout": 5.0, "read_timeout": 15.0}


def draft_of(server: ServerConfig) -> Dict[str, Any]:
    """The form's values for ``server``."""
    d = dict(NEW_SERVER)
    d.update({k: getattr(server, k) for k in NEW_SERVER if k != "path_mappings"})
    d["path_mappings"] = [{"local": m.local, "remote": m.remote} for m in server.path_mappings]
    return d


def number(text: str) -> Any:
    """A number if the text is one; else the text, so validation names the key."""
    try:
        v = float(text)
    except ValueError:
        return text
    return int(v) if v.is_integer() else v


def build_layout(dialog, config: Config) -> None:
    """Create the dialog's widgets on ``dialog.root``; commands call ``dialog``'s methods."""
    tk, ttk = dialog.tk, dialog.ttk
    root = dialog.root
    pad = {"padx": 4, "pady": 2}
    outer = ttk.Frame(root, padding=8)
    outer.grid(sticky="nsew")
    root.columnconfigure(0, weight=1)
    root.rowconfigure(0, weight=1)

    left = ttk.LabelFrame(outer, text="Servers", padding=6)
    left.grid(row=0, column=0, sticky="nsw", **pad)
    dialog.server_list = ttk.Treeview(left, height=12, show="tree", selectmode="browse")
    dialog.server_list.column("#0", width=210)
    dialog.server_list.grid(row=0, column=0, columnspan=2, sticky="nsew")
    dialog.server_list.bind("<<TreeviewSelect>>", dialog._on_select)
    dialog.add_button = ttk.Button(left, text="Add server", command=dialog.add_server)
    dialog.add_button.grid(row=1, column=0, sticky="ew", **pad)
    dialog.remove_button = ttk.Button(left, text="Remove", command=dialog.remove_server)
    dialog.remove_button.grid(row=1, column=1, sticky="ew", **pad)

    form = ttk.LabelFrame(outer, text="Server", padding=6)
    form.grid(row=0, column=1, sticky="nsew", **pad)
    outer.columnconfigure(1, weight=1)
    dialog.form = form
    dialog.vars: Dict[str, Any] = {}
    row = 0

    def entry(label: str, key: str, **kw):
        nonlocal row
        ttk.Label(form, text=label).grid(row=row, column=0, sticky="w", **pad)
        var = tk.StringVar()
        widget = ttk.Entry(form, textvariable=var, width=44, **kw)
        widget.grid(row=row, column=1, columnspan=3, sticky="ew", **pad)
        dialog.vars[key] = var
        row += 1
        return widget

    def button_row(*buttons):
        """(text, command) pairs as a row of buttons under the fields; returns the buttons."""
        nonlocal row
        frame = ttk.Frame(form)
        frame.grid(row=row, column=1, columnspan=3, sticky="w", **pad)
        made = []
        for i, (text, command) in enumerate(buttons):
            made.append(ttk.Button(frame, text=text, command=command))
            made[-1].grid(row=0, column=i, padx=(0, 6) if i < len(buttons) - 1 else 0)
        row += 1
        return made

    ttk.Label(form, text="Type").grid(row=row, column=0, sticky="w", **pad)
    dialog.vars["type"] = tk.StringVar(value="jellyfin")
    dialog.type_box = ttk.Combobox(form, textvariable=dialog.vars["type"], values=SERVER_TYPES, state="readonly",
                                 width=12)
    dialog.type_box.grid(row=row, column=1, sticky="w", **pad)
    dialog.type_box.bind("<<ComboboxSelected>>", lambda e: dialog._type_changed())
    row += 1
    dialog.id_entry = entry("Name", "id")
    dialog.url_entry = entry("URL", "url")
    dialog.url_entry.grid(columnspan=2)
    dialog.find_button = ttk.Button(form, text="Find on network", command=dialog.find_servers)
    dialog.find_button.grid(row=row - 1, column=3, sticky="e", **pad)
    dialog.username_entry = entry("User name", "username")
    dialog.password_label = ttk.Label(form, text="Password")
    dialog.password_label.grid(row=row, column=0, sticky="w", **pad)
    dialog.vars["password"] = tk.StringVar()
    dialog.password_entry = ttk.Entry(form, textvariable=dialog.vars["password"], show="•", width=44)
    dialog.password_entry.grid(row=row, column=1, columnspan=3, sticky="ew", **pad)
    dialog._password_row = row
    row += 1
    ttk.Label(form, text="Token").grid(row=row, column=0, sticky="w", **pad)
    dialog.token_shown = tk.StringVar(value="(none)")
    ttk.Label(form, textvariable=dialog.token_shown).grid(row=row, column=1, sticky="w", **pad)
    ttk.Label(form, text="paste:").grid(row=row, column=2, sticky="e", **pad)
    dialog.vars["paste_token"] = tk.StringVar()
    dialog.paste_entry = ttk.Entry(form, textvariable=dialog.vars["paste_token"], show="•", width=18)
    dialog.paste_entry.grid(row=row, column=3, sticky="ew", **pad)
    row += 1
    dialog.sign_in_button, dialog.test_button = button_row(("Sign in", dialog.sign_in),
                                                       ("Test connection", dialog.test_connection))
    dialog.vars["enabled"] = tk.BooleanVar(value=True)
    dialog.vars["verify_tls"] = tk.BooleanVar(value=True)
    checks = ttk.Frame(form)
    checks.grid(row=row, column=1, columnspan=3, sticky="w", **pad)
    dialog.enabled_check = ttk.Checkbutton(checks, text="Sync with this server", variable=dialog.vars["enabled"])
    dialog.enabled_check.grid(row=0, column=0, padx=(0, 12))
    dialog.verify_check = ttk.Checkbutton(checks, text="Verify TLS certificate", variable=dialog.vars["verify_tls"])
    dialog.verify_check.grid(row=0, column=1)
    row += 1
    dialog.ca_entry = entry("CA file", "ca_bundle")
    dialog.ca_entry.grid(columnspan=2)
    dialog.ca_browse_button = ttk.Button(form, text="Browse…", command=dialog.browse_ca)
    dialog.ca_browse_button.grid(row=row - 1, column=3, sticky="e", **pad)
    ttk.Label(form, text="Path mappings").grid(row=row, column=0, sticky="nw", **pad)
    dialog.mapping_list = ttk.Treeview(form, height=4, show="tree", selectmode="browse")
    dialog.mapping_list.grid(row=row, column=1, columnspan=3, sticky="ew", **pad)
    row += 1
    ttk.Label(form, text="local folder").grid(row=row, column=0, sticky="e", **pad)
    dialog.vars["map_local"] = tk.StringVar()
    dialog.map_local_entry = ttk.Entry(form, textvariable=dialog.vars["map_local"], width=20)
    dialog.map_local_entry.grid(row=row, column=1, sticky="ew", **pad)
    ttk.Label(form, text="server folder").grid(row=row, column=2, sticky="e", **pad)
    dialog.vars["map_remote"] = tk.StringVar()
    dialog.map_remote_entry = ttk.Entry(form, textvariable=dialog.vars["map_remote"], width=18)
    dialog.map_remote_entry.grid(row=row, column=3, sticky="ew", **pad)
    row += 1
    (dialog.browse_local_button, dialog.add_mapping_button,
     dialog.remove_mapping_button) = button_row(("Browse local folder…", dialog.browse_local),
                                              ("Add mapping", dialog.add_mapping),
                                              ("Remove mapping", dialog.remove_mapping))
    for key in ("id", "enabled"):  # the list follows the form as you type
        dialog.vars[key].trace_add("write", lambda *_: dialog._relabel())
    form.columnconfigure(1, weight=1)

    sync = ttk.LabelFrame(outer, text="Sync", padding=6)
    sync.grid(row=1, column=0, columnspan=2, sticky="ew", **pad)
    dialog.sync_vars: Dict[str, Any] = {}
    for i, f in enumerate(SYNC_FIELDS):
        ttk.Label(sync, text=f.label).grid(row=i // 2, column=(i % 2) * 2, sticky="w", **pad)
        var = tk.StringVar(value=str(number(str(getattr(config.sync, f.key)))))
        if f.kind == "choice":
            w = ttk.Combobox(sync, textvariable=var, values=NOTIFICATION_CHOICES, state="readonly", width=8)
        else:
            w = ttk.Spinbox(sync, textvariable=var, from_=f.minimum, to=f.maximum, increment=f.step, width=8)
        w.grid(row=i // 2, column=(i % 2) * 2 + 1, sticky="w", **pad)
        dialog.sync_vars[f.key] = var

    dialog.status = ttk.Label(outer, textvariable=dialog.status_var, wraplength=640, justify="left")
    dialog.status.grid(row=2, column=0, columnspan=2, sticky="ew", **pad)
    bottom = ttk.Frame(outer)
    bottom.grid(row=3, column=0, columnspan=2, sticky="e", **pad)
    dialog.save_button = ttk.Button(bottom, text="Save", command=dialog.save)
    dialog.save_button.grid(row=0, column=0, padx=4)
    dialog.close_button = ttk.Button(bottom, text="Close", command=dialog.close)
    dialog.close_button.grid(row=0, column=1, padx=4)
