"""The settings dialog in a real Tk window on Xvfb, driven by real pointer clicks and typing (xdotool)."""
import os
import shutil
import subprocess
import threading
import time

import pytest

from playbacksync.settings import load_config, save_config
from playbacksync.config import Config, PathMapping, ServerConfig
from tests.fakes.base import fail_on_spec_violations  # noqa: F401
from tests.fakes.jellyfin import JellyfinFake
from tests.fakes.plex import FakePlex, FakePlexTV

tk = pytest.importorskip("tkinter")
pytestmark = pytest.mark.skipif(not (shutil.which("Xvfb") and shutil.which("xdotool")),
                                reason="needs Xvfb and xdotool")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCREENSHOT = os.path.join(ROOT, "resources", "screenshots", "mpv-settings-dialog.png")


@pytest.fixture(scope="module")
def display():
    r, w = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", "1024x700x24", "-nolisten", "tcp"],
                            pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    with os.fdopen(r) as fh:
        number = fh.readline().strip()
    old = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = f":{number}"
    try:
        yield os.environ["DISPLAY"]
    finally:
        if old is None:
            os.environ.pop("DISPLAY", None)
        else:
            os.environ["DISPLAY"] = old
        proc.terminate()
        proc.wait(5)


class Driver:
    """Real X input against an in-process Tk window; the Tk loop keeps running while xdotool works."""

    def __init__(self, root):
        self.root = root
        self.max_gap = 0.0  # longest time the Tk loop was not serviced while waiting (responsiveness)

    def pump(self, until=None, timeout=10.0, proc=None):
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while time.monotonic() < deadline:
            self.root.update()
            now = time.monotonic()
            self.max_gap = max(self.max_gap, now - last)
            last = now
            if proc is not None and proc.poll() is None:
                time.sleep(0.005)
                continue
            if until is None or until():
                return
            time.sleep(0.01)
        raise AssertionError("timed out waiting for the dialog")

    def xdo(self, *args):
        proc = subprocess.Popen(["xdotool", *map(str, args)])
        self.pump(proc=proc)
        assert proc.returncode == 0
        for _ in range(5):
            self.root.update()
            time.sleep(0.005)

    def click(self, widget, times=1):
        self.root.update()
        x = widget.winfo_rootx() + widget.winfo_width() // 2
        y = widget.winfo_rooty() + widget.winfo_height() // 2
        self.xdo("mousemove", "--sync", x, y, "click", "--repeat", times, "--delay", 60, 1)

    def type_into(self, widget, text):
        self.click(widget, times=3)  # triple click selects the line; typing replaces it
        self.xdo("type", "--delay", 8, text)


def _open(path, **kw):
    from playbacksync.settings.dialog import open_dialog

    root = tk.Tk()
    root.geometry("+0+0")
    dialog = open_dialog(root, str(path), **kw)
    drv = Driver(root)
    drv.pump(lambda: root.winfo_viewable())
    return dialog, drv


def _all_texts(widget):
    out = []
    for child in widget.winfo_children():
        for opt in ("text",):
            try:
                out.append(str(child.cget(opt)))
            except tk.TclError:
                pass
        if isinstance(child, (tk.Entry, tk.Listbox)) or child.winfo_class() in ("TEntry", "TCombobox", "TSpinbox"):
            try:
                out.append(child.get())
            except (tk.TclError, TypeError):
                out.append(" ".join(child.get(0, "end")))
        out += _all_texts(child)
    return out


def test_sign_in_add_mapping_save_and_reopen(display, tmp_path):
    path = tmp_path / "conf" / "config.toml"
    with JellyfinFake() as fake:
        uid = fake.add_user("alice", "pw-123")
        dialog, drv = _open(path)
        try:
            drv.click(dialog.add_button)
            drv.type_into(dialog.id_entry, "home")
            drv.type_into(dialog.url_entry, fake.url)
            drv.type_into(dialog.username_entry, "alice")
            drv.type_into(dialog.password_entry, "pw-123")
            fake.delay(1.0)  # a slow server: the window must keep answering meanwhile
            drv.max_gap = 0.0
            drv.click(dialog.sign_in_button)
            drv.pump(lambda: "Signed in as alice" in dialog.status_var.get())
            assert drv.max_gap < 0.5, f"the Tk loop stalled {drv.max_gap:.2f}s during sign-in"
            token = dialog.drafts[0]["token"]
            assert fake.tokens[token] == uid
            assert dialog.token_shown.get() == token[:4] + "…"
            assert dialog.password_entry.get() == ""

            drv.type_into(dialog.map_local_entry, "/mnt/media")
            drv.type_into(dialog.map_remote_entry, "/data/media")
            drv.click(dialog.add_mapping_button)
            assert dialog.mapping_labels() == ["/mnt/media  ⇒  /data/media"]
            drv.click(dialog.save_button)
            drv.pump(lambda: dialog.status_var.get().startswith("Saved to"))

            root = dialog.root
            w, h = root.winfo_width(), root.winfo_height()
            shot = tmp_path / "dialog.png"
            subprocess.run(["import", "-window", "root", "-crop", f"{w}x{h}+0+0", "+repage", str(shot)],
                           check=True, timeout=20)
            assert shot.stat().st_size > 10_000
            if os.environ.get("PLAYBACK_SYNC_UPDATE_SCREENSHOT"):
                os.makedirs(os.path.dirname(SCREENSHOT), exist_ok=True)
                shutil.copyfile(shot, SCREENSHOT)
            drv.click(dialog.close_button)
            assert dialog.closed
        finally:
            if not dialog.closed:
                dialog.root.destroy()

        config = load_config(str(path))
        server = config.server("home")
        assert (server.type, server.url, server.username, server.user_id) == ("jellyfin", fake.url, "alice", uid)
        assert server.token == token and server.path_mappings == (PathMapping("/mnt/media", "/data/media"),)
        assert oct(os.stat(path).st_mode & 0o777) == "0o600"

        dialog, drv = _open(path)
        try:
            assert dialog.server_labels() == ["home · jellyfin"]
            assert dialog.mapping_labels() == ["/mnt/media  ⇒  /data/media"]
            assert dialog.url_entry.get() == fake.url
            texts = " ".join(_all_texts(dialog.root)) + dialog.token_shown.get()
            assert token not in texts and token[:4] + "…" in dialog.token_shown.get()
            drv.click(dialog.test_button)
            drv.pump(lambda: dialog.status_var.get().startswith(("Connected", "the server", "Contacting")) and
                     not dialog.status_var.get().startswith("Contacting"))
            assert dialog.status_var.get().startswith("Connected to Fake Jellyfin (Jellyfin Server 10.10.7)")
        finally:
            dialog.root.destroy()


def test_invalid_values_are_not_saved(display, tmp_path):
    path = tmp_path / "config.toml"
    good = Config(servers=(ServerConfig(id="jf", type="jellyfin", url="http://jf.lan:8096"),))
    save_config(good, str(path))
    before = path.read_bytes()
    dialog, drv = _open(path)
    try:
        drv.type_into(dialog.url_entry, "htp://nope")
        drv.click(dialog.save_button)
        status = dialog.status_var.get()
        assert status.startswith("Not saved.") and 'server "jf", url: \'htp://nope\' is not an http(s) URL' in status
        assert "servers[" not in status
        assert "https://host:port" in status
        assert path.read_bytes() == before
        drv.click(dialog.test_button)
        assert "url: 'htp://nope' is not an http(s) URL" in dialog.status_var.get()
    finally:
        dialog.root.destroy()


def test_plex_pin_sign_in(display, tmp_path):
    path = tmp_path / "config.toml"
    with FakePlex() as plex, FakePlexTV() as tv:
        save_config(Config(servers=(ServerConfig(id="px", type="plex", url=plex.url),)), str(path))
        dialog, drv = _open(path, plex_tv_url=tv.url)
        try:
            assert dialog.sign_in_button.cget("text") == "Sign in at plex.tv"
            assert not dialog.password_entry.winfo_ismapped()
            drv.click(dialog.sign_in_button)
            drv.pump(lambda: "enter the code" in dialog.status_var.get())
            code = dialog.status_var.get().split("enter the code")[1].split()[0]
            tv.link(code, plex.token)
            drv.pump(lambda: "Signed in to Plex" in dialog.status_var.get())
            drv.click(dialog.save_button)
            drv.pump(lambda: dialog.status_var.get().startswith("Saved to"))
        finally:
            dialog.root.destroy()
    assert load_config(str(path)).server("px").token == plex.token


def test_list_follows_the_name_as_you_type_browse_fills_folders_and_errors_name_the_server(display, tmp_path):
    path = tmp_path / "config.toml"
    save_config(Config(servers=(ServerConfig(id="jf", type="jellyfin", url="http://jf.lan:8096"),
                                ServerConfig(id="attic", type="emby", url="http://attic.lan:8096"))), str(path))
    media = tmp_path / "media"
    media.mkdir()
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    dialog, drv = _open(path)
    try:
        assert dialog.server_labels() == ["jf · jellyfin", "attic · emby"]
        classes, todo = set(), [dialog.root]
        while todo:
            w = todo.pop()
            classes.add(w.winfo_class())
            todo += w.winfo_children()
        assert not classes & {"Listbox", "Entry", "Button", "Label", "Checkbutton", "Spinbox"}, classes  # themed only
        drv.type_into(dialog.id_entry, "living-room")
        assert dialog.server_labels() == ["living-room · jellyfin", "attic · emby"]  # before any save
        # Browse: the choosers are Tk's file dialogs; here they answer as a person picking would
        dialog._ask_folder = lambda initial: str(media)
        dialog._ask_file = lambda initial: str(ca)
        drv.click(dialog.browse_local_button)
        assert dialog.map_local_entry.get() == str(media)
        drv.click(dialog.ca_browse_button)
        assert dialog.ca_entry.get() == str(ca)
        # an error in the second server names it, not servers[2]
        dialog.server_list.selection_set("1")
        drv.pump(lambda: dialog.current == 1)
        drv.type_into(dialog.url_entry, "htp://attic")
        drv.click(dialog.save_button)
        status = dialog.status_var.get()
        assert 'server "attic", url:' in status and "servers[" not in status, status
        assert 'id = "living-room"' not in path.read_text()
    finally:
        dialog.root.destroy()


def test_find_on_network_fills_the_url_of_the_server_that_answered(display, tmp_path, monkeypatch):
    from tests.test_discovery import Responder

    responder = Responder(jellyfin=("Living Room", "http://127.0.0.7:8096"))
    monkeypatch.setenv("PLAYBACK_SYNC_DISCOVERY_ADDRESS", responder.target)
    dialog, drv = _open(tmp_path / "config.toml")
    try:
        drv.click(dialog.add_button)
        drv.click(dialog.find_button)
        drv.pump(lambda: dialog.status_var.get().startswith("Found"))
        assert dialog.url_entry.get() == "http://127.0.0.7:8096"
        assert "Living Room" in dialog.status_var.get()
        assert responder.probes == [b"who is JellyfinServer?"]
    finally:
        dialog.root.destroy()
        responder.close()
