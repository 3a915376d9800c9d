"""`playback-sync settings`: a Tk dialog for the mpv side's config file.

Add, edit and remove servers, their path mappings and the sync options; sign
in (Jellyfin/Emby: user name and password; Plex: a code at plex.tv/link, or a
pasted token) and test the connection. Network calls run on worker threads
and report back through ``after`` polling, so the window never freezes.
Saving validates through the same schema as loading the file does.
"""
from __future__ import annotations

import os
import queue
import sys
import threading
from typing import Any, Callable, Dict, List, Optional

from ..config import SERVER_TYPES, Config, ServerConfig
from . import actions
from .config_file import ConfigError, config_from_dict, load_config, save_config
from .schema import NOTIFICATION_CHOICES, SYNC_FIELDS, mask_token

NEW_SERVER = {"id": "", "type": "jellyfin", "url": "", "username": "", "token": "", "user_id": "",
              "enabled": True, "verify_tls": True, "ca_bundle": "", "device_id": "", "path_mappings": [],
              "connect_timeout": 5.0, "read_timeout": 15.0}


def _draft(server: ServerConfig) -> Dict[str, Any]:
    d = dict(NEW_SERVER)
    d.update({k: getattr(server, k) for k in NEW_SERVER if k != "path_mappings"})
    d["path_mappings"] = [{"local": m.local, "remote": m.remote} for m in server.path_mappings]
    return d


def _number(text: str) -> Any:
    """A number if the text is one; else the text, so validation names the key."""
    try:
        v = float(text)
    except ValueError:
        return text
    return int(v) if v.is_integer() else v


class SettingsDialog:
    def __init__(self, root, config_path: str, config: Config, *, plex_tv_url: Optional[str] = None):
        import tkinter as tk
        from tkinter import ttk

        self.tk, self.ttk = tk, ttk
        self.root = root
        self.path = config_path
        self.plex_tv_url = plex_tv_url or os.environ.get("PLAYBACK_SYNC_PLEX_TV_URL") or actions.PLEX_TV
        self.drafts: List[Dict[str, Any]] = [_draft(s) for s in config.servers]
        self.current: Optional[int] = None
        self.closed = False
        self._results: "queue.Queue" = queue.Queue()
        self._busy = 0
        self.status_var = tk.StringVar(value=f"Settings file: {config_path}")
        root.title("Playback Sync settings")
        style = ttk.Style(root)
        if "clam" in style.theme_names():
            style.theme_use("clam")
        self._build(config)
        self._saved = self._collect()
        if self.drafts:
            self.select(0)
        else:
            self._set_form_state("disabled")
        root.protocol("WM_DELETE_WINDOW", self.close)
        root.after(50, self._poll)

    # -- layout -------------------------------------------------------------------
    def _build(self, config: Config) -> None:
        tk, ttk = self.tk, self.ttk
        root = self.root
        pad = {"padx": 4, "pady": 2}
        outer = ttk.Frame(root, padding=8)
        outer.grid(sticky="nsew")
        root.columnconfigure(0, weight=1)
        root.rowconfigure(0, weight=1)

        left = ttk.LabelFrame(outer, text="Servers", padding=6)
        left.grid(row=0, column=0, sticky="nsw", **pad)
        self.server_list = ttk.Treeview(left, height=12, show="tree", selectmode="browse")
        self.server_list.column("#0", width=210)
        self.server_list.grid(row=0, column=0, columnspan=2, sticky="nsew")
        self.server_list.bind("<<TreeviewSelect>>", self._on_select)
        self.add_button = ttk.Button(left, text="Add server", command=self.add_server)
        self.add_button.grid(row=1, column=0, sticky="ew", **pad)
        self.remove_button = ttk.Button(left, text="Remove", command=self.remove_server)
        self.remove_button.grid(row=1, column=1, sticky="ew", **pad)

        form = ttk.LabelFrame(outer, text="Server", padding=6)
        form.grid(row=0, column=1, sticky="nsew", **pad)
        outer.columnconfigure(1, weight=1)
        self.form = form
        self.vars: Dict[str, Any] = {}
        row = 0

        def entry(label: str, key: str, **kw):
            nonlocal row
            ttk.Label(form, text=label).grid(row=row, column=0, sticky="w", **pad)
            var = tk.StringVar()
            widget = ttk.Entry(form, textvariable=var, width=44, **kw)
            widget.grid(row=row, column=1, columnspan=3, sticky="ew", **pad)
            self.vars[key] = var
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
        self.vars["type"] = tk.StringVar(value="jellyfin")
        self.type_box = ttk.Combobox(form, textvariable=self.vars["type"], values=SERVER_TYPES, state="readonly",
                                     width=12)
        self.type_box.grid(row=row, column=1, sticky="w", **pad)
        self.type_box.bind("<<ComboboxSelected>>", lambda e: self._type_changed())
        row += 1
        self.id_entry = entry("Name", "id")
        self.url_entry = entry("URL", "url")
        self.url_entry.grid(columnspan=2)
        self.find_button = ttk.Button(form, text="Find on network", command=self.find_servers)
        self.find_button.grid(row=row - 1, column=3, sticky="e", **pad)
        self.username_entry = entry("User name", "username")
        self.password_label = ttk.Label(form, text="Password")
        self.password_label.grid(row=row, column=0, sticky="w", **pad)
        self.vars["password"] = tk.StringVar()
        self.password_entry = ttk.Entry(form, textvariable=self.vars["password"], show="•", width=44)
        self.password_entry.grid(row=row, column=1, columnspan=3, sticky="ew", **pad)
        self._password_row = row
        row += 1
        ttk.Label(form, text="Token").grid(row=row, column=0, sticky="w", **pad)
        self.token_shown = tk.StringVar(value="(none)")
        ttk.Label(form, textvariable=self.token_shown).grid(row=row, column=1, sticky="w", **pad)
        ttk.Label(form, text="paste:").grid(row=row, column=2, sticky="e", **pad)
        self.vars["paste_token"] = tk.StringVar()
        self.paste_entry = ttk.Entry(form, textvariable=self.vars["paste_token"], show="•", width=18)
        self.paste_entry.grid(row=row, column=3, sticky="ew", **pad)
        row += 1
        self.sign_in_button, self.test_button = button_row(("Sign in", self.sign_in),
                                                           ("Test connection", self.test_connection))
        self.vars["enabled"] = tk.BooleanVar(value=True)
        self.vars["verify_tls"] = tk.BooleanVar(value=True)
        checks = ttk.Frame(form)
        checks.grid(row=row, column=1, columnspan=3, sticky="w", **pad)
        self.enabled_check = ttk.Checkbutton(checks, text="Sync with this server", variable=self.vars["enabled"])
        self.enabled_check.grid(row=0, column=0, padx=(0, 12))
        self.verify_check = ttk.Checkbutton(checks, text="Verify TLS certificate", variable=self.vars["verify_tls"])
        self.verify_check.grid(row=0, column=1)
        row += 1
        self.ca_entry = entry("CA file", "ca_bundle")
        self.ca_entry.grid(columnspan=2)
        self.ca_browse_button = ttk.Button(form, text="Browse…", command=self.browse_ca)
        self.ca_browse_button.grid(row=row - 1, column=3, sticky="e", **pad)
        ttk.Label(form, text="Path mappings").grid(row=row, column=0, sticky="nw", **pad)
        self.mapping_list = ttk.Treeview(form, height=4, show="tree", selectmode="browse")
        self.mapping_list.grid(row=row, column=1, columnspan=3, sticky="ew", **pad)
        row += 1
        ttk.Label(form, text="local folder").grid(row=row, column=0, sticky="e", **pad)
        self.vars["map_local"] = tk.StringVar()
        self.map_local_entry = ttk.Entry(form, textvariable=self.vars["map_local"], width=20)
        self.map_local_entry.grid(row=row, column=1, sticky="ew", **pad)
        ttk.Label(form, text="server folder").grid(row=row, column=2, sticky="e", **pad)
        self.vars["map_remote"] = tk.StringVar()
        self.map_remote_entry = ttk.Entry(form, textvariable=self.vars["map_remote"], width=18)
        self.map_remote_entry.grid(row=row, column=3, sticky="ew", **pad)
        row += 1
        (self.browse_local_button, self.add_mapping_button,
         self.remove_mapping_button) = button_row(("Browse local folder…", self.browse_local),
                                                  ("Add mapping", self.add_mapping),
                                                  ("Remove mapping", self.remove_mapping))
        for key in ("id", "enabled"):  # the list follows the form as you type
            self.vars[key].trace_add("write", lambda *_: self._relabel())
        form.columnconfigure(1, weight=1)

        sync = ttk.LabelFrame(outer, text="Sync", padding=6)
        sync.grid(row=1, column=0, columnspan=2, sticky="ew", **pad)
        self.sync_vars: Dict[str, Any] = {}
        for i, f in enumerate(SYNC_FIELDS):
            ttk.Label(sync, text=f.label).grid(row=i // 2, column=(i % 2) * 2, sticky="w", **pad)
            var = tk.StringVar(value=str(_number(str(getattr(config.sync, f.key)))))
            if f.kind == "choice":
                w = ttk.Combobox(sync, textvariable=var, values=NOTIFICATION_CHOICES, state="readonly", width=8)
            else:
                w = ttk.Spinbox(sync, textvariable=var, from_=f.minimum, to=f.maximum, increment=f.step, width=8)
            w.grid(row=i // 2, column=(i % 2) * 2 + 1, sticky="w", **pad)
            self.sync_vars[f.key] = var

        self.status = ttk.Label(outer, textvariable=self.status_var, wraplength=640, justify="left")
        self.status.grid(row=2, column=0, columnspan=2, sticky="ew", **pad)
        bottom = ttk.Frame(outer)
        bottom.grid(row=3, column=0, columnspan=2, sticky="e", **pad)
        self.save_button = ttk.Button(bottom, text="Save", command=self.save)
        self.save_button.grid(row=0, column=0, padx=4)
        self.close_button = ttk.Button(bottom, text="Close", command=self.close)
        self.close_button.grid(row=0, column=1, padx=4)

    # -- form <-> drafts --------------------------------------------------------------
    def _label(self, d: Dict[str, Any]) -> str:
        return f"{d['id'] or '(unnamed)'} · {d['type']}" + ("" if d["enabled"] else " (off)")

    def _refresh_list(self) -> None:
        self._listing = True  # selection_set below must not count as the user's selection
        try:
            self.server_list.delete(*self.server_list.get_children())
            for i, d in enumerate(self.drafts):
                self.server_list.insert("", "end", iid=str(i), text=self._label(d))
            if self.current is not None:
                self.server_list.selection_set(str(self.current))
            self.server_list.update_idletasks()
        finally:
            self._listing = False

    def _relabel(self) -> None:
        """The selected server's line shows the name and type being typed, before any save."""
        if self.current is None or getattr(self, "_loading", False):
            return
        live = dict(self.drafts[self.current], id=self.vars["id"].get().strip(), type=self.vars["type"].get(),
                    enabled=bool(self.vars["enabled"].get()))
        if self.server_list.exists(str(self.current)):
            self.server_list.item(str(self.current), text=self._label(live))

    def server_labels(self) -> List[str]:
        return [self.server_list.item(i, "text") for i in self.server_list.get_children()]

    def mapping_labels(self) -> List[str]:
        return [self.mapping_list.item(i, "text") for i in self.mapping_list.get_children()]

    def _set_form_state(self, state: str) -> None:
        for w in (self.id_entry, self.url_entry, self.username_entry, self.password_entry, self.paste_entry,
                  self.ca_entry, self.map_local_entry, self.map_remote_entry, self.sign_in_button, self.test_button,
                  self.enabled_check, self.verify_check, self.add_mapping_button, self.remove_mapping_button,
                  self.remove_button, self.ca_browse_button, self.browse_local_button, self.find_button):
            w.configure(state=state)
        self.type_box.configure(state="readonly" if state == "normal" else "disabled")

    def _store_form(self) -> None:
        """Copy the form into the current draft."""
        if self.current is None:
            return
        d = self.drafts[self.current]
        for key in ("id", "type", "url", "username", "ca_bundle"):
            d[key] = self.vars[key].get().strip()
        d["enabled"] = bool(self.vars["enabled"].get())
        d["verify_tls"] = bool(self.vars["verify_tls"].get())
        pasted = self.vars["paste_token"].get().strip()
        if pasted:
            d["token"] = pasted
            d["user_id"] = d["user_id"] if d["type"] != "plex" else ""
            self.vars["paste_token"].set("")
            from ..redact import register_secret

            register_secret(pasted)
        self.token_shown.set(mask_token(d["token"]))

    def _load_form(self) -> None:
        d = self.drafts[self.current]
        self._loading = True
        for key in ("id", "type", "url", "username", "ca_bundle"):
            self.vars[key].set(d[key])
        self.vars["enabled"].set(d["enabled"])
        self._loading = False
        self.vars["verify_tls"].set(d["verify_tls"])
        self.vars["password"].set("")
        self.vars["paste_token"].set("")
        self.token_shown.set(mask_token(d["token"]))
        self.mapping_list.delete(*self.mapping_list.get_children())
        for m in d["path_mappings"]:
            self.mapping_list.insert("", "end", text=f"{m['local']}  ⇒  {m['remote']}")
        self._type_changed()

    def _type_changed(self) -> None:
        plex = self.vars["type"].get() == "plex"
        for w in (self.password_label, self.password_entry):
            (w.grid_remove if plex else w.grid)()
        self.sign_in_button.configure(text="Sign in at plex.tv" if plex else "Sign in")
        self._relabel()

    def select(self, index: int) -> None:
        self._store_form()
        self.current = index
        self._set_form_state("normal")
        self._load_form()
        self._refresh_list()

    def _on_select(self, _event=None) -> None:
        sel = self.server_list.selection()
        if sel and not getattr(self, "_listing", False) and int(sel[0]) != self.current:
            self.select(int(sel[0]))

    def add_server(self) -> None:
        self._store_form()
        taken = {d["id"] for d in self.drafts}
        n = 1
        while f"server-{n}" in taken:
            n += 1
        d = dict(NEW_SERVER, id=f"server-{n}", path_mappings=[])
        self.drafts.append(d)
        self.current = None
        self.select(len(self.drafts) - 1)
        self.url_entry.focus_set()

    def remove_server(self) -> None:
        if self.current is None:
            return
        del self.drafts[self.current]
        self.current = None
        if self.drafts:
            self.select(0)
        else:
            self._refresh_list()
            for key in ("id", "url", "username", "ca_bundle"):
                self.vars[key].set("")
            self.mapping_list.delete(*self.mapping_list.get_children())
            self._set_form_state("disabled")

    def add_mapping(self) -> None:
        local, remote = self.vars["map_local"].get().strip(), self.vars["map_remote"].get().strip()
        if not local or not remote:
            self.say("Give both folders: where the files are here, and where the server sees them.", error=True)
            return
        self.drafts[self.current]["path_mappings"].append({"local": local, "remote": remote})
        self.mapping_list.insert("", "end", text=f"{local}  ⇒  {remote}")
        self.vars["map_local"].set("")
        self.vars["map_remote"].set("")

    def remove_mapping(self) -> None:
        sel = self.mapping_list.selection()
        if not sel or self.current is None:
            return
        del self.drafts[self.current]["path_mappings"][self.mapping_list.index(sel[0])]
        self.mapping_list.delete(sel[0])

    # -- Browse buttons (the chooser is swappable: tests pick without a file dialog) ------------------
    def _ask_folder(self, initial: str) -> str:
        from tkinter import filedialog

        return filedialog.askdirectory(parent=self.root, initialdir=initial or os.path.expanduser("~"),
                                       title="Local folder of the server's media", mustexist=True) or ""

    def _ask_file(self, initial: str) -> str:
        from tkinter import filedialog

        return filedialog.askopenfilename(parent=self.root, initialdir=os.path.dirname(initial) or "/etc/ssl",
                                          title="CA certificate file (PEM)") or ""

    def browse_local(self) -> None:
        chosen = self._ask_folder(self.vars["map_local"].get().strip())
        if chosen:
            self.vars["map_local"].set(chosen)
            self.map_remote_entry.focus_set()

    def browse_ca(self) -> None:
        chosen = self._ask_file(self.vars["ca_bundle"].get().strip())
        if chosen:
            self.vars["ca_bundle"].set(chosen)

    # -- validation and saving -----------------------------------------------------------
    def _collect(self) -> Dict[str, Any]:
        servers = []
        for d in self.drafts:
            raw = {k: v for k, v in d.items() if k != "path_mappings"}
            raw["path_mappings"] = [dict(m) for m in d["path_mappings"]]
            for k in ("ca_bundle", "device_id", "user_id", "username", "token"):
                if not raw[k]:
                    del raw[k]
            servers.append(raw)
        sync = {key: (var.get() if key == "notifications" else _number(var.get().strip()))
                for key, var in self.sync_vars.items()}
        return {"servers": servers, "sync": sync}

    def validated(self) -> Config:
        self._store_form()
        return config_from_dict(self._collect(), self.path)

    def _current_server(self) -> Optional[ServerConfig]:
        """The selected server, validated on its own; None (and a message) if it is not usable yet."""
        self._store_form()
        if self.current is None:
            return None
        raw = self._collect()["servers"][self.current]
        try:
            return config_from_dict({"servers": [raw]}, "this server").servers[0]
        except ConfigError as exc:
            self.say("; ".join(p.said() for p in exc.problems), error=True)
            return None

    def save(self) -> bool:
        try:
            config = self.validated()
        except ConfigError as exc:  # each problem names its server by name
            self.say("Not saved. " + "; ".join(p.said() for p in exc.problems), error=True)
            return False
        try:
            save_config(config, self.path)
        except OSError as exc:
            self.say(f"Not saved: {self.path}: {exc.strerror or exc}", error=True)
            return False
        self._saved = self._collect()
        self._refresh_list()
        self.say(f"Saved to {self.path}")
        return True

    def close(self) -> None:
        self._store_form()
        if self._collect() != self._saved:
            from tkinter import messagebox

            if not messagebox.askyesno("Playback Sync", "Close without saving your changes?", parent=self.root):
                return
        self.closed = True
        self.root.destroy()

    # -- network actions (off the Tk thread) --------------------------------------------------
    def say(self, text: str, error: bool = False) -> None:
        self.status_var.set(text)
        self.status.configure(foreground="#b00020" if error else "")

    def _run(self, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        self._busy += 1
        self.sign_in_button.configure(state="disabled")
        self.test_button.configure(state="disabled")

        def target():
            try:
                result = (True, work())
            except actions.ActionError as exc:
                result = (False, str(exc))
            except Exception as exc:  # shown, never raised into Tk
                from ..redact import redact

                result = (False, redact(f"{type(exc).__name__}: {exc}"))
            self._results.put((done, result))

        threading.Thread(target=target, name="settings-dialog-action", daemon=True).start()

    def _poll(self) -> None:
        if self.closed:
            return
        try:
            while True:
                done, (ok, value) = self._results.get_nowait()
                self._busy -= 1
                if self._busy == 0 and self.current is not None:
                    self.sign_in_button.configure(state="normal")
                    self.test_button.configure(state="normal")
                if ok:
                    done(value)
                else:
                    self.say(value, error=True)
        except queue.Empty:
            pass
        self.root.after(50, self._poll)

    def sign_in(self) -> None:
        server = self._current_server()
        if server is None:
            return
        draft = self.drafts[self.current]
        if server.type == "plex":
            self._plex_sign_in(server, draft)
            return
        username, password = self.vars["username"].get().strip(), self.vars["password"].get()
        if not username or not password:
            self.say("Enter the user name and password, then press Sign in.", error=True)
            return
        self.say(f"Signing in to {server.url} as {username}…")

        def done(signed: ServerConfig) -> None:
            draft.update(username=signed.username, token=signed.token, user_id=signed.user_id)
            self.vars["password"].set("")
            if self.drafts and self.current is not None and self.drafts[self.current] is draft:
                self.token_shown.set(mask_token(signed.token))
            self.say(f"Signed in as {signed.username}: token {mask_token(signed.token)}. Press Save to keep it.")

        self._run(lambda: actions.sign_in_password(server, username, password), done)

    def _plex_sign_in(self, server: ServerConfig, draft: Dict[str, Any]) -> None:
        self.say("Asking plex.tv for a code…")
        url = self.plex_tv_url

        def got_pin(pin):
            pin_id, code = pin
            self.say(f"Open https://plex.tv/link and enter the code  {code}  — waiting for you to sign in there…")
            self._run(lambda: actions.plex_wait_for_token(server, pin_id, plex_tv_url=url,
                                                          cancelled=lambda: self.closed), got_token)

        def got_token(token):
            draft["token"] = token
            if self.drafts and self.current is not None and self.drafts[self.current] is draft:
                self.token_shown.set(mask_token(token))
            self.say(f"Signed in to Plex: token {mask_token(token)}. Press Save to keep it.")

        self._run(lambda: actions.plex_request_pin(server, url), got_pin)

    def find_servers(self) -> None:
        """Look for servers of the selected type on the local network (settings/discovery.py)."""
        if self.current is None:
            return
        kind = self.vars["type"].get()
        draft = self.drafts[self.current]
        self.say(f"Looking for {kind.capitalize()} servers on the local network…")

        def done(found) -> None:
            if not found:
                self.say(f"No {kind.capitalize()} server answered; type its address.", error=True)
                return
            if self.current is not None and self.drafts[self.current] is draft:
                self.vars["url"].set(found[0].url)
            others = "; also: " + ", ".join(f"{f.name} {f.url}" for f in found[1:]) if found[1:] else ""
            self.say(f"Found {found[0].name} at {found[0].url}{others}. Sign in, then press Save.")

        def work():
            from .discovery import discover

            return discover((kind,))

        self._run(work, done)

    def test_connection(self) -> None:
        server = self._current_server()
        if server is None:
            return
        self.say(f"Contacting {server.url}…")
        self._run(lambda: actions.test_connection(server), lambda text: self.say(text))


def open_dialog(root, config_path: str, *, plex_tv_url: Optional[str] = None) -> SettingsDialog:
    """Build the dialog in ``root`` from the file at ``config_path`` (absent: empty). ConfigError if broken."""
    config = load_config(config_path) if os.path.exists(config_path) else Config()
    return SettingsDialog(root, config_path, config, plex_tv_url=plex_tv_url)


def run_dialog(config_path: str, *, plex_tv_url: Optional[str] = None) -> int:
    """Open the settings dialog and return when it is closed: 0, or 2 when it cannot open."""
    try:
        import tkinter as tk
    except ImportError:
        print("playback-sync: Tk is not installed (Debian: apt install python3-tk); "
              "use `playback-sync login` or edit " + config_path, file=sys.stderr)
        return 2
    try:
        root = tk.Tk(className="playback-sync")
    except tk.TclError as exc:
        print(f"playback-sync: cannot open a window ({exc}); use `playback-sync login` or edit {config_path}",
              file=sys.stderr)
        return 2
    try:
        open_dialog(root, config_path, plex_tv_url=plex_tv_url)
    except ConfigError as exc:
        root.destroy()
        print(f"playback-sync: {exc}", file=sys.stderr)
        return 2
    root.mainloop()
    return 0
