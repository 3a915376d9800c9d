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

from ..config import Config, ServerConfig
from . import actions
from .config_file import ConfigError, config_from_dict, load_config, save_config
from .dialog_layout import NEW_SERVER, build_layout, draft_of, number
from .schema import mask_token

class SettingsDialog:
    def __init__(self, root, config_path: str, config: Config, *, plex_tv_url: Optional[str] = None):
        import tkinter as tk
        from tkinter import ttk

        self.tk, self.ttk = tk, ttk
        self.root = root
        self.path = config_path
        self.plex_tv_url = plex_tv_url or os.environ.get("PLAYBACK_SYNC_PLEX_TV_URL") or actions.PLEX_TV
        self.drafts: List[Dict[str, Any]] = [draft_of(s) for s in config.servers]
        self.current: Optional[int] = None
        self.closed = False
        self._results: "queue.Queue" = queue.Queue()
        self._busy = 0
        self.status_var = tk.StringVar(value=f"Settings file: {config_path}")
        root.title("Playback Sync settings")
        style = ttk.Style(root)
        if "clam" in style.theme_names():
            style.theme_use("clam")
        build_layout(self, config)
        self._saved = self._collect()
        if self.drafts:
            self.select(0)
        else:
            self._set_form_state("disabled")
        root.protocol("WM_DELETE_WINDOW", self.close)
        root.after(50, self._poll)

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
        sync = {key: (var.get() if key == "notifications" else number(var.get().strip()))
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
