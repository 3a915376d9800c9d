"""Runs Debian's real Kodi under Xvfb with a PulseAudio null sink and a throwaway HOME.

    kodi = KodiRun(tmp_path)             # lays out HOME, userdata, add-ons
    kodi.install_zip(zip_path)           # the built add-on, as "Install from zip" would unpack it
    kodi.install_requests_module()       # script.module.requests made from PyPI's requests
    kodi.seed_addon_settings(ADDON_ID, {...})
    kodi.start(); kodi.rpc("JSONRPC.Ping"); kodi.wait_notification("Player.OnAVStart")
    kodi.quit()

Kodi is launched with ``env -i`` (its Python takes the standard library from the
first Python on PATH) and only ever listens on 127.0.0.1.
"""
from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import zipfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional
from xml.sax.saxutils import escape

REQUESTS_MODULES = ("requests", "urllib3", "idna", "charset_normalizer", "certifi")


class KodiError(RuntimeError):
    pass


def missing_tools() -> List[str]:
    return [t for t in ("kodi", "xvfb-run", "pulseaudio", "import") if shutil.which(t) is None]


class JsonRpc:
    """JSON-RPC over Kodi's raw TCP port: unframed JSON objects, answers and notifications mixed."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.settimeout(None)
        self._next = 0
        self._lock = threading.Lock()
        self._cond = threading.Condition()
        self._answers: Dict[int, dict] = {}
        self.notifications: List[dict] = []
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        decoder, buf = json.JSONDecoder(), ""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._closed = True
                    self._cond.notify_all()
                return
            buf += chunk.decode("utf-8", "replace")
            while True:
                buf = buf.lstrip()
                if not buf:
                    break
                try:
                    obj, end = decoder.raw_decode(buf)
                except ValueError:
                    break  # incomplete object: wait for more bytes
                buf = buf[end:]
                with self._cond:
                    if "id" in obj and ("result" in obj or "error" in obj):
                        self._answers[obj["id"]] = obj
                    elif "method" in obj:
                        obj["received"] = time.monotonic()
                        self.notifications.append(obj)
                    self._cond.notify_all()

    def call(self, method: str, params: Optional[dict] = None, timeout: float = 15.0) -> Any:
        with self._lock:
            self._next += 1
            rid = self._next
        msg = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        self.sock.sendall(json.dumps(msg).encode())
        deadline = time.monotonic() + timeout
        with self._cond:
            while rid not in self._answers:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise KodiError(f"no answer to {method} within {timeout} s")
                self._cond.wait(left)
            answer = self._answers.pop(rid)
        if "error" in answer:
            raise KodiError(f"{method} {params}: {answer['error']}")
        return answer["result"]

    def wait_notification(self, method: str, since: int = 0, timeout: float = 20.0,
                          where: Callable[[dict], bool] = lambda n: True) -> dict:
        """The first notification ``method`` at index >= ``since`` matching ``where``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for n in self.notifications[since:]:
                    if n["method"] == method and where(n):
                        return n
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    seen = [n["method"] for n in self.notifications[since:]]
                    raise KodiError(f"no {method} notification within {timeout} s (saw {seen})")
                self._cond.wait(left)

    def mark(self) -> int:
        with self._cond:
            return len(self.notifications)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class KodiRun:
    def __init__(self, root: Path, gui_settings: Optional[Dict[str, str]] = None):
        self.root = Path(root)
        self.gui_settings = dict(gui_settings or {})
        self.home = self.root / "home"
        self.xdg = self.root / "xdg"
        self.userdata = self.home / ".kodi" / "userdata"
        self.addons = self.home / ".kodi" / "addons"
        self.log_path = self.home / ".kodi" / "temp" / "kodi.log"
        self.port = _free_port()
        self.display: Optional[str] = None
        self.kodi: Optional[subprocess.Popen] = None
        self.pulse: Optional[subprocess.Popen] = None
        self.rpc_client: Optional[JsonRpc] = None
        self.exit_code: Optional[int] = None
        for d in (self.userdata, self.addons, self.xdg):
            d.mkdir(parents=True, exist_ok=True)
        self.xdg.chmod(0o700)
        self._seed_userdata()

    # -- layout ------------------------------------------------------------
    def _seed_userdata(self) -> None:
        (self.userdata / "advancedsettings.xml").write_text(
            "<advancedsettings version=\"1.0\">"
            f"<jsonrpc><tcpport>{self.port}</tcpport><compactoutput>true</compactoutput></jsonrpc>"
            "<splash>false</splash>"
            "<video><ignoresecondsatstart>1</ignoresecondsatstart><ignorepercentatend>5</ignorepercentatend>"
            "<playcountminimumpercent>90</playcountminimumpercent></video>"
            "</advancedsettings>\n")
        settings = {
            "services.esenabled": "true", "services.esallinterfaces": "false",
            "services.webserver": "false", "services.zeroconf": "false", "services.upnp": "false",
            "services.airplay": "false", "services.wsdiscovery": "false",
            "general.addonupdates": "2", "general.addonnotifications": "false",
            "addons.unknownsources": "true", "weather.addon": "", "screensaver.mode": "",
        }
        settings.update(self.gui_settings)
        body = "".join(f'<setting id="{k}">{escape(v)}</setting>' for k, v in settings.items())
        (self.userdata / "guisettings.xml").write_text(f'<settings version="2">{body}</settings>\n')

    def add_video_source(self, name: str, path: Path) -> None:
        folder = str(path).rstrip("/") + "/"
        (self.userdata / "sources.xml").write_text(
            "<sources><programs><default pathversion=\"1\"></default></programs>"
            f"<video><default pathversion=\"1\"></default><source><name>{escape(name)}</name>"
            f"<path pathversion=\"1\">{escape(folder)}</path><allowsharing>true</allowsharing></source></video>"
            "</sources>\n")

    def install_zip(self, zip_path: Path) -> Path:
        with zipfile.ZipFile(zip_path) as zf:
            tops = {n.split("/")[0] for n in zf.namelist()}
            if len(tops) != 1:
                raise KodiError(f"{zip_path} must hold one top folder, has {sorted(tops)}")
            zf.extractall(self.addons)
        return self.addons / tops.pop()

    def install_requests_module(self) -> Path:
        """script.module.requests built from the requests installed here (PyPI's)."""
        import requests
        folder = self.addons / "script.module.requests"
        lib = folder / "lib"
        lib.mkdir(parents=True, exist_ok=True)
        for name in REQUESTS_MODULES:
            module = importlib.import_module(name)
            src = Path(module.__file__).parent
            shutil.copytree(src, lib / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.so"))
            # Pure Python only, like the real add-on: compiled modules cannot load in a second
            # of Kodi's Python sub-interpreters.
        (folder / "addon.xml").write_text(
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            f'<addon id="script.module.requests" name="requests" version="{requests.__version__}" '
            'provider-name="tests">\n'
            '  <requires><import addon="xbmc.python" version="3.0.0"/></requires>\n'
            '  <extension point="xbmc.python.module" library="lib"/>\n'
            '  <extension point="xbmc.addon.metadata"><summary lang="en_GB">requests for tests</summary>'
            '<platform>all</platform></extension>\n</addon>\n')
        return folder

    def install_builtin_runner(self) -> str:
        """A tiny script add-on that runs the Kodi builtin given as its argument (JSON-RPC has no
        way to run builtins such as InstallAddon or UpdateAddonRepos). Returns its id."""
        addon_id = "script.test.builtin"
        folder = self.addons / addon_id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "run.py").write_text("import sys\nimport xbmc\nxbmc.executebuiltin(sys.argv[1])\n")
        (folder / "addon.xml").write_text(
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            f'<addon id="{addon_id}" name="builtin runner" version="1.0.0" provider-name="tests">\n'
            '  <requires><import addon="xbmc.python" version="3.0.0"/></requires>\n'
            '  <extension point="xbmc.python.script" library="run.py"/>\n'
            '  <extension point="xbmc.addon.metadata"><summary lang="en_GB">tests</summary>'
            '<platform>all</platform></extension>\n</addon>\n')
        return addon_id

    def builtin(self, command: str) -> None:
        self.rpc("Addons.ExecuteAddon", {"addonid": "script.test.builtin", "params": [command]})

    def add_profiles(self, *names: str) -> Dict[str, Path]:
        """Kodi profiles besides the master one, each with its own folder (and its own guisettings,
        a copy of the master's, so JSON-RPC stays on). Returns name -> the profile's userdata folder."""
        flags = ("<hasdatabases>true</hasdatabases><canwritedatabases>true</canwritedatabases>"
                 "<hassources>true</hassources><canwritesources>true</canwritesources>"
                 "<lockaddonmanager>false</lockaddonmanager><locksettings>0</locksettings>")
        body = ('<profile><id>0</id><name>Master user</name>'
                '<directory pathversion="1">special://masterprofile/</directory>' + flags + '</profile>')
        folders = {}
        for number, name in enumerate(names, start=1):
            body += (f'<profile><id>{number}</id><name>{escape(name)}</name>'
                     f'<directory pathversion="1">profiles/{escape(name)}/</directory>'  # under the master's folder
                     + flags + '</profile>')
            folder = self.userdata / "profiles" / name
            folder.mkdir(parents=True, exist_ok=True)
            if (self.userdata / "sources.xml").exists():
                shutil.copyfile(self.userdata / "sources.xml", folder / "sources.xml")
            # The profile opens on Videos, not Home: Kodi 20.1 hung in Home's widget jobs right after
            # a profile load here (the same CDirectoryProvider trouble the scenario avoids).
            gui = (self.userdata / "guisettings.xml").read_text().replace(
                "</settings>", '<setting id="lookandfeel.startupwindow">10025</setting></settings>')
            (folder / "guisettings.xml").write_text(gui)
            folders[name] = folder
        (self.userdata / "profiles.xml").write_text(
            "<profiles><lastloaded>0</lastloaded><useloginscreen>false</useloginscreen><autologin>-1</autologin>"
            f"<nextIdProfile>{len(names) + 1}</nextIdProfile>{body}</profiles>\n")
        return folders

    def reconnect(self, timeout: float = 30.0) -> None:
        """A new JSON-RPC connection (Kodi restarts its servers when it loads another profile)."""
        if self.rpc_client:
            self.rpc_client.close()
        self.rpc_client = None
        deadline = time.monotonic() + timeout
        while True:
            try:
                client = JsonRpc(self.port)
                if client.call("JSONRPC.Ping", timeout=5) == "pong":
                    self.rpc_client = client
                    return
                client.close()
            except (OSError, KodiError):
                pass
            if time.monotonic() > deadline:
                raise KodiError(f"Kodi's JSON-RPC did not come back within {timeout} s")
            time.sleep(0.3)

    def seed_addon_settings(self, addon_id: str, values: Dict[str, str], userdata: Optional[Path] = None) -> Path:
        folder = (userdata or self.userdata) / "addon_data" / addon_id
        folder.mkdir(parents=True, exist_ok=True)
        body = "".join(f'<setting id="{escape(k)}">{escape(str(v))}</setting>' for k, v in values.items())
        path = folder / "settings.xml"
        path.write_text(f'<settings version="2">{body}</settings>\n')
        return path

    def addon_data(self, addon_id: str) -> Path:
        return self.userdata / "addon_data" / addon_id

    # -- processes -------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> None:
        sock = self.xdg / "pulse.sock"
        base_env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(self.home),
                    "XDG_RUNTIME_DIR": str(self.xdg)}
        self.pulse = subprocess.Popen(
            ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no",
             "--disable-shm=yes", "-L", "module-null-sink sink_name=nullsink",
             "-L", f"module-native-protocol-unix socket={sock} auth-anonymous=1"],
            env=base_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        while not sock.exists():
            if time.monotonic() > deadline or self.pulse.poll() is not None:
                raise KodiError("pulseaudio did not start")
            time.sleep(0.05)
        env = dict(base_env, PULSE_SERVER=f"unix:{sock}", LP_NUM_THREADS="1")
        # xvfb-run picks a free display itself (-a); we learn it from Kodi's environment below.
        self.kodi = subprocess.Popen(
            ["env", "-i", *[f"{k}={v}" for k, v in env.items()],
             "xvfb-run", "-a", "-s", "-screen 0 1280x720x24 -nolisten tcp", "kodi", "--standalone"],
            stdout=open(self.root / "kodi.stdout", "wb"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.kodi.poll() is not None:
                raise KodiError(f"kodi exited with {self.kodi.returncode}; see {self.log_path}")
            try:
                self.rpc_client = JsonRpc(self.port)
                if self.rpc_client.call("JSONRPC.Ping", timeout=5) == "pong":
                    break
            except (OSError, KodiError):
                if self.rpc_client:
                    self.rpc_client.close()
                self.rpc_client = None
            if time.monotonic() > deadline:
                raise KodiError(f"Kodi's JSON-RPC did not answer within {timeout} s")
            time.sleep(0.2)
        self.display = self._find_display()

    def _find_display(self) -> Optional[str]:
        for pid in _descendants(self.kodi.pid):
            try:
                env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            values = dict(e.decode(errors="replace").split("=", 1) for e in env if b"=" in e)
            if "DISPLAY" in values and "XAUTHORITY" in values:
                self.xauthority = values["XAUTHORITY"]
                return values["DISPLAY"]
        return None

    def rpc(self, method: str, params: Optional[dict] = None, timeout: float = 15.0) -> Any:
        return self.rpc_client.call(method, params, timeout)

    def screenshot(self, target: Path) -> Path:
        if not self.display:
            raise KodiError("no X display found for Kodi")
        env = {"PATH": "/usr/bin:/bin", "DISPLAY": self.display, "XAUTHORITY": self.xauthority}
        subprocess.run(["import", "-window", "root", str(target)], env=env, check=True,
                       capture_output=True, timeout=30)
        return target

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def quit(self, timeout: float = 20.0) -> Optional[int]:
        """Application.Quit, wait for the exit; returns Kodi's exit code."""
        if self.kodi is None:
            return self.exit_code
        try:
            if self.kodi.poll() is None and self.rpc_client is not None:
                try:
                    self.rpc("Application.Quit", timeout=5)
                except KodiError:
                    pass
            self.exit_code = self.kodi.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        finally:
            self._stop_pulse()
            if self.rpc_client:
                self.rpc_client.close()
        return self.exit_code

    def kill(self) -> None:
        if self.kodi is not None and self.kodi.poll() is None:
            try:
                os.killpg(self.kodi.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.kodi.wait(10)
        self._stop_pulse()

    def _stop_pulse(self) -> None:
        if self.pulse is not None and self.pulse.poll() is None:
            self.pulse.terminate()
            try:
                self.pulse.wait(5)
            except subprocess.TimeoutExpired:
                self.pulse.kill()
                self.pulse.wait(5)


def _descendants(pid: int) -> List[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            children = []
        for c in children:
            out.append(int(c))
            todo.append(int(c))
    return out


def requests_module_zip(out_dir: Path, root: Path) -> Path:
    """script.module.requests as an add-on zip, from the wheels pinned in tests/kodi/requests-libs.txt
    (versions that run on Python 3.8 too). Only for the test repository: real installs get Kodi's own."""
    from playbacksync import kodi_zip

    wheels = kodi_zip.fetch_wheels(root / "tests" / "kodi" / "requests-libs.txt", root / "build" / "kodi-test-wheels")
    version = next(v for n, v in kodi_zip.pinned_libraries(root / "tests" / "kodi" / "requests-libs.txt")
                   if n == "requests")
    addon_xml = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                 f'<addon id="script.module.requests" name="requests" version="{version}" provider-name="tests">\n'
                 '  <requires><import addon="xbmc.python" version="3.0.0"/></requires>\n'
                 '  <extension point="xbmc.python.module" library="lib"/>\n'
                 '  <extension point="xbmc.addon.metadata"><summary lang="en_GB">requests for tests</summary>'
                 '<platform>all</platform></extension>\n</addon>\n')
    target = Path(out_dir) / f"script.module.requests-{version}.zip"
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("script.module.requests/addon.xml", addon_xml)
        for name, data in kodi_zip.library_files(wheels):
            zf.writestr(f"script.module.requests/lib/{name}", data)
    return target


# -- helpers the real-Kodi tests share ---------------------------------------------------
YES_NO_DIALOG = 10100


def wait_for(predicate, timeout=15.0, what="condition", step=0.1, kodi: Optional["KodiRun"] = None):
    """Poll ``predicate`` until it is truthy (and return it); on time-out say what, with Kodi's log tail."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except KodiError:  # Kodi between profiles, or a dialog still closing
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            tail = "\n".join(kodi.log_text().splitlines()[-40:]) if kodi else ""
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{tail}")
        time.sleep(step)


def at(seconds: int) -> dict:
    """An absolute seek target ({"seconds": n} would seek relative)."""
    return {"time": {"hours": 0, "minutes": 0, "seconds": seconds, "milliseconds": 0}}


def current_window(kodi: "KodiRun") -> int:
    return kodi.rpc("GUI.GetProperties", {"properties": ["currentwindow"]})["currentwindow"]["id"]


def play_from(kodi: "KodiRun", path: Path, seconds: int, play_for: float = 2.5) -> None:
    """Open a file, seek to ``seconds`` and let it play ``play_for`` seconds."""
    mark = kodi.rpc_client.mark()
    kodi.rpc("Player.Open", {"item": {"file": str(path)}})
    kodi.rpc_client.wait_notification("Player.OnAVStart", mark, timeout=20)
    kodi.rpc("Player.Seek", {"playerid": 1, "value": at(seconds)})
    kodi.rpc_client.wait_notification("Player.OnSeek", mark)
    time.sleep(play_for)


def stop_and_wait_end(kodi: "KodiRun") -> float:
    """Stop playback; returns where the add-on says the viewing ended (its log line)."""
    pattern = r"ended \(stop\) at ([0-9.]+)"
    before = len(re.findall(pattern, kodi.log_text()))
    mark = kodi.rpc_client.mark()
    kodi.rpc("Player.Stop", {"playerid": 1})
    kodi.rpc_client.wait_notification("Player.OnStop", mark)
    found = wait_for(lambda: (lambda f: len(f) > before and f)(re.findall(pattern, kodi.log_text())), 10,
                     "the viewing to end", kodi=kodi)
    return float(found[-1])
