"""The command as a new user meets it (issue 16): every complaint of the issue's *Why*, driven
through the real `playback-sync` in a subprocess against the spec-validating fakes over loopback."""
from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from playbacksync.changes import PROGRESS, WATCHED, Change
from playbacksync.queue import SyncQueue
from tests.fakes.base import fail_on_spec_violations, make_self_signed_cert  # noqa: F401
from tests.fakes.jellyfin import JellyfinFake
from tests.fakes.mediabrowser import TICKS_PER_SECOND

ROOT = Path(__file__).resolve().parent.parent / "plugin"
TOKEN = "user-cli-token-5a1e77c0d9"


@pytest.fixture
def env(tmp_path):
    e = dict(os.environ, PYTHONPATH=str(ROOT), PLAYBACK_SYNC_DATA_DIR=str(tmp_path / "data"),
             XDG_STATE_HOME=str(tmp_path / "state"), XDG_CONFIG_HOME=str(tmp_path / "config"))
    e.pop("PLAYBACK_SYNC_CONFIG", None)
    e.pop("PLAYBACK_SYNC_DISCOVERY_ADDRESS", None)
    return {"tmp": tmp_path, "env": e, "data": str(tmp_path / "data")}


def cli(env, *args, stdin="", timeout=90, extra_env=None):
    done = subprocess.run([sys.executable, "-m", "playbacksync.cli", *args], input=stdin, capture_output=True,
                          text=True, timeout=timeout, env=dict(env["env"], **(extra_env or {})))
    return done.returncode, done.stdout, done.stderr


@pytest.fixture
def jellyfin():
    with JellyfinFake(version="10.10.7") as fake:
        uid = fake.add_user("alice", "pass")
        fake.issue_token(uid, TOKEN)
        fake.uid = uid
        fake.film = fake.add_item("The Long Film", path="/srv/media/long film.mkv", runtime_s=7200)
        fake.ep = fake.add_item("Pilot", path="/srv/media/Show.S01E02.Pilot.mkv", runtime_s=1500)
        yield fake


def config(env, url, name="home", extra=""):
    path = env["tmp"] / "c.toml"
    path.write_text(f'[[servers]]\nid = "{name}"\ntype = "jellyfin"\nurl = "{url}"\ntoken = "{TOKEN}"\n'
                    f'user_id = "alice-id"\n{extra}')
    os.chmod(path, 0o600)
    return str(path)


def jf_config(env, fake, **kw):
    path = config(env, fake.url, **kw)
    text = Path(path).read_text().replace('"alice-id"', f'"{fake.uid}"')
    Path(path).write_text(text)
    return path


def enqueue(env, *changes):
    q = SyncQueue(env["data"])
    try:
        return [q.enqueue_change(c) for c in changes]
    finally:
        q.close()


def progress(fake, item, s, server="home", at=1.0):
    return Change(item, server, fake.uid, PROGRESS, position_ms=int(s * 1000), created_at=at)


def watched(fake, item, server="home", at=2.0):
    return Change(item, server, fake.uid, WATCHED, completed=True, created_at=at)


def fill_index(env, cfg, fake):
    """The item index learns the server's titles (as the first play or sync does)."""
    code, out, err = cli(env, "--config", cfg, "identify", "/srv/media/long film.mkv")
    assert code == 0, out + err


# -- 1. names everywhere -----------------------------------------------------------------

def test_status_lists_pending_and_failed_changes_by_title_in_words(env, jellyfin):
    cfg = jf_config(env, jellyfin)
    fill_index(env, cfg, jellyfin)
    enqueue(env, progress(jellyfin, jellyfin.film, 3733), watched(jellyfin, jellyfin.ep))
    code, out, err = cli(env, "--config", cfg, "status", "--no-check")
    assert code == 0, err
    assert "2 waiting to be sent" in out
    assert "The Long Film: stopped at 1:02:13 → home" in out
    assert "Show, season 1 episode 2" in out and "watched → home" in out
    assert "progress_update" not in out and "mark_watched" not in out
    code, out, _ = cli(env, "--config", cfg, "status", "--no-check", "--json")
    pending = json.loads(out)["pending"]
    assert [(p["item"], p["title"], p["change"]) for p in pending] == [
        (jellyfin.film, "The Long Film", "stopped at 1:02:13"), (jellyfin.ep, "Show, season 1 episode 2 (Pilot)",
                                                                 "watched")]


def test_identify_prints_the_title_with_the_id(env, jellyfin):
    cfg = jf_config(env, jellyfin)
    code, out, _ = cli(env, "--config", cfg, "identify", "/srv/media/long film.mkv")
    assert code == 0
    assert f"home: The Long Film (item {jellyfin.film})" in out


# -- 2. history --------------------------------------------------------------------------

def test_history_says_what_was_sent_where_when_and_the_answer(env, jellyfin):
    cfg = jf_config(env, jellyfin)
    fill_index(env, cfg, jellyfin)
    enqueue(env, progress(jellyfin, jellyfin.film, 600))
    code, out, err = cli(env, "--config", cfg, "sync", "--timeout", "30")
    assert code == 0, out + err
    assert jellyfin.user_data(jellyfin.uid, jellyfin.film).position_ticks == 600 * TICKS_PER_SECOND
    code, out, _ = cli(env, "--config", cfg, "history")
    assert code == 0
    line = next(li for li in out.splitlines() if "The Long Film" in li)
    assert "home" in line and "stopped at 0:10:00" in line and "saved" in line
    assert time.strftime("%Y-%m-%d") in line
    code, out, _ = cli(env, "--config", cfg, "history", "--json", "--since", "1h")
    doc = json.loads(out)
    assert [(c["item"], c["answer"], c["resolution"]) for c in doc["changes"]] == [(jellyfin.film, "saved", "applied")]
    code, out, _ = cli(env, "--config", cfg, "history", "--json", "--since", "2999-01-01")
    assert json.loads(out)["changes"] == []


# -- 3. clear ------------------------------------------------------------------------------

def _one_failed(env, jellyfin, cfg):
    gone = jellyfin.add_item("Deleted Film", path="/srv/media/deleted.mkv")
    fill_index(env, cfg, jellyfin)  # the film was there when it was played
    jellyfin.remove_item(gone)
    enqueue(env, watched(jellyfin, gone))
    code, out, _ = cli(env, "--config", cfg, "sync", "--timeout", "30")
    assert code == 1 and "1 failed" in out
    return gone


def test_clear_drops_a_failed_change_after_asking_and_status_is_clean_again(env, jellyfin):
    cfg = jf_config(env, jellyfin)
    _one_failed(env, jellyfin, cfg)
    code, out, _ = cli(env, "--config", cfg, "status", "--no-check")
    assert code == 1
    failed = next(li for li in out.splitlines() if "Deleted Film" in li)
    assert "watched → home — " in failed and "404" in failed and "mark_watched" not in out
    # no terminal and no --yes: refuse, drop nothing
    code, out, err = cli(env, "--config", cfg, "clear")
    assert code == 2 and "--yes" in err
    assert cli(env, "--config", cfg, "status", "--no-check")[0] == 1
    code, out, err = cli(env, "--config", cfg, "clear", "12345", "--yes")
    assert code == 2 and "#12345" in err
    code, out, err = cli(env, "--config", cfg, "clear", "--yes")
    assert code == 0, err
    assert "watched → home" in out and "Dropped 1 failed change." in out
    code, out, _ = cli(env, "--config", cfg, "status", "--no-check")
    assert code == 0 and "failed (" not in out
    assert cli(env, "--config", cfg, "sync")[0] == 0


def test_clear_asks_on_a_terminal_and_keeps_on_no(env, jellyfin):
    cfg = jf_config(env, jellyfin)
    _one_failed(env, jellyfin, cfg)
    out = tmux_run(env, ["--config", cfg, "clear"], answer="n")
    assert "Drop them?" in out and "Nothing dropped." in out
    assert cli(env, "--config", cfg, "status", "--no-check")[0] == 1


# -- 4. pause and resume ------------------------------------------------------------------------

def test_pause_holds_changes_across_runs_until_resume(env, jellyfin):
    cfg = jf_config(env, jellyfin)
    code, out, err = cli(env, "--config", cfg, "pause", "--server", "home")
    assert code == 0 and "Paused syncing to home" in out
    enqueue(env, progress(jellyfin, jellyfin.film, 100), progress(jellyfin, jellyfin.film, 200, at=3.0))
    code, out, _ = cli(env, "--config", cfg, "sync", "--timeout", "30")
    assert code == 1 and "paused" in out
    assert jellyfin.user_data(jellyfin.uid, jellyfin.film).position_ticks == 0
    code, out, _ = cli(env, "--config", cfg, "status", "--json")
    assert json.loads(out)["servers"]["home"]["paused"] is True
    assert "paused" in cli(env, "--config", cfg, "status")[1]
    code, out, _ = cli(env, "--config", cfg, "resume")
    assert code == 0 and "Resumed" in out
    code, out, _ = cli(env, "--config", cfg, "sync", "--timeout", "30")
    assert code == 0, out
    assert jellyfin.user_data(jellyfin.uid, jellyfin.film).position_ticks == 200 * TICKS_PER_SECOND


@pytest.mark.parametrize("command", [["retry"], ["pause"], ["resume"], ["clear", "--yes"], ["history"]])
def test_unknown_server_name_exits_2_naming_it(env, jellyfin, command):
    cfg = jf_config(env, jellyfin)
    code, out, err = cli(env, "--config", cfg, *command, "--server", "nosuch")
    assert code == 2, out
    assert "nosuch" in err and "home" in err


# -- 5. plain errors, clear outcomes -----------------------------------------------------------

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_errors_are_said_in_words(env, tmp_path_factory):
    port = _free_port()
    cfg = config(env, f"http://127.0.0.1:{port}")
    code, out, _ = cli(env, "--config", cfg, "status")
    assert code == 1
    assert f"nothing answers at http://127.0.0.1:{port}" in out
    assert "Errno" not in out and "Max retries" not in out and "HTTPConnectionPool" not in out
    cfg = config(env, "http://no-such-host.invalid:8096")
    code, out, _ = cli(env, "--config", cfg, "status")
    assert "the name no-such-host.invalid does not resolve" in out


def test_untrusted_certificate_says_set_ca_bundle(env, tmp_path_factory):
    cert, key = make_self_signed_cert(str(tmp_path_factory.mktemp("tls")))
    with JellyfinFake(version="10.10.7", tls=(cert, key)) as fake:
        cfg = config(env, fake.url)
        code, out, _ = cli(env, "--config", cfg, "status")
    assert code == 1 and "TLS certificate" in out and "not trusted: set ca_bundle" in out
    assert "SSLError" not in out and "CERTIFICATE_VERIFY_FAILED" not in out


def test_sync_says_nothing_to_send_and_why_changes_are_left(env, jellyfin):
    cfg = jf_config(env, jellyfin)
    code, out, _ = cli(env, "--config", cfg, "sync")
    assert code == 0 and "Nothing to send." in out
    enqueue(env, progress(jellyfin, jellyfin.film, 100))
    port = _free_port()
    cfg = config(env, f"http://127.0.0.1:{port}")
    code, out, _ = cli(env, "--config", cfg, "sync", "--timeout", "60")
    assert code == 1
    assert "home: 1 pending (offline: nothing answers at" in out


class _HtmlPage(http.server.BaseHTTPRequestHandler):
    def _page(self):
        body = b"<!DOCTYPE html><html><head><title>Router login</title></head><body>" + b"x" * 4000 + b"</body></html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _page

    def log_message(self, *a):
        pass


def test_login_at_a_page_that_is_not_the_server_says_so_and_needs_no_terminal(env):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HtmlPage)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}"
        code, out, err = cli(env, "--config", str(env["tmp"] / "new.toml"), "login", "jellyfin", "--url", url,
                             "--username", "alice", stdin="secret-pw\n")
    finally:
        srv.shutdown()
        srv.server_close()
    assert code == 1
    assert "not the Jellyfin API" in out
    assert "<html" not in out.lower() and "Router login" not in out and "xxxx" not in out
    assert "GetPassWarning" not in err and "secret-pw" not in out + err


def test_login_reads_the_password_from_stdin_without_warning(env, jellyfin):
    path = env["tmp"] / "new.toml"
    code, out, err = cli(env, "--config", str(path), "login", "jellyfin", "--url", jellyfin.url, "--username",
                         "alice", stdin="pass\n")
    assert code == 0, out + err
    assert "GetPassWarning" not in err and "Warning" not in err
    assert 'type = "jellyfin"' in path.read_text()


# -- help ---------------------------------------------------------------------------------------

COMMANDS = ["play", "status", "sync", "history", "retry", "clear", "pause", "resume", "identify", "settings",
            "login", "install", "uninstall", "attach"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_help_has_description_examples_exit_codes_and_config_place(env, command):
    code, out, _ = cli(env, command, "--help")
    assert code == 0
    usage, _, rest = out.partition("\n\n")
    description = rest.split("\n\n")[0]
    assert description.strip() and not description.startswith(("positional", "options"))
    assert f"examples:\n  playback-sync" in out
    assert "exit codes:" in out and "  2    bad usage" in out
    assert "config file: " + str(env["tmp"] / "config" / "playback-sync" / "config.toml") in out


# -- a terminal (tmux) ------------------------------------------------------------------------------

def tmux_run(env, args, answer=None, width=100, wait_for=None, timeout=60.0):
    """Run the command in a detached tmux pane (a real terminal); answer a prompt; return the screen."""
    name = f"ps-{os.getpid()}-{time.monotonic_ns()}"
    done = env["tmp"] / f"{name}.done"
    environ = " ".join(f"{k}={_q(v)}" for k, v in env["env"].items()
                       if k.startswith(("PLAYBACK_SYNC", "XDG_", "PYTHONPATH")))
    cmd = f"env {environ} {_q(sys.executable)} -m playbacksync.cli {' '.join(_q(a) for a in args)}; " \
          f"echo EXIT=$? > {_q(str(done))}; sleep 30"
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", str(width), "-y", "40", cmd], check=True)
    try:
        deadline = time.monotonic() + timeout
        if answer is not None:
            while "[y/N]" not in _screen(name):
                assert time.monotonic() < deadline, _screen(name)
                time.sleep(0.05)
            subprocess.run(["tmux", "send-keys", "-t", name, answer, "Enter"], check=True)
        seen = ""
        while not done.exists():
            screen = _screen(name)
            if wait_for is not None and wait_for(screen):
                seen = screen
            assert time.monotonic() < deadline, _screen(name)
            time.sleep(0.02)
        return (seen + "\n" if seen else "") + _screen(name)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], check=False)


def _screen(name):
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", name], capture_output=True, text=True).stdout


def _q(s):
    import shlex

    return shlex.quote(str(s))


# -- 6. progress on long work ------------------------------------------------------------------

def _backlog(env, fake, n):
    items = [fake.add_item(f"Film {i}", path=f"/srv/media/film {i}.mkv") for i in range(n)]
    enqueue(env, *[watched(fake, item) for item in items])
    return items


def test_sync_of_a_backlog_shows_a_bar_on_a_terminal(env, jellyfin):
    cfg = jf_config(env, jellyfin)
    items = _backlog(env, jellyfin, 60)
    screen = tmux_run(env, ["--config", cfg, "sync", "--timeout", "60"])
    assert "EXIT" not in screen  # (the exit status goes to a file)
    line = next(li for li in screen.splitlines() if li.startswith("sending"))
    assert "━" in line and "60/60" in line, screen
    assert "Sent 60 changes." in screen
    assert all(jellyfin.user_data(jellyfin.uid, i).played for i in items)


def test_sync_of_a_backlog_writes_plain_lines_without_a_terminal(env, jellyfin):
    cfg = jf_config(env, jellyfin)
    _backlog(env, jellyfin, 60)
    code, out, err = cli(env, "--config", cfg, "sync", "--timeout", "60")
    assert code == 0, out + err
    lines = err.splitlines()
    assert lines[0] == "sending: 0/60" and lines[-1] == "sending: 60/60", err
    assert "\x1b[" not in err + out and "Sent 60 changes." in out


def test_first_read_of_a_large_library_shows_progress(env, jellyfin):
    for i in range(2500):
        jellyfin.add_item(f"Extra {i}", path=f"/srv/media/extra {i}.mkv")
    cfg = jf_config(env, jellyfin)
    screen = tmux_run(env, ["--config", cfg, "identify", "/srv/media/long film.mkv"],
                      wait_for=lambda s: "reading the library of home" in s)
    assert "reading the library of home" in screen and "2502" in screen, screen
    assert f"home: The Long Film (item {jellyfin.film})" in screen
    # not a terminal: plain lines on stderr, the result alone on stdout (the index is new again)
    os.remove(Path(env["data"]) / "index.sqlite")
    code, out, err = cli(env, "--config", cfg, "identify", "--json", "/srv/media/long film.mkv")
    assert code == 0 and json.loads(out)["/srv/media/long film.mkv"]["home"]["title"] == "The Long Film"
    assert err.splitlines()[-1] == "reading the library of home: 2502"


def test_a_long_backlog_is_listed_in_part_and_counted(env, jellyfin):
    cfg = jf_config(env, jellyfin)
    _backlog(env, jellyfin, 25)
    code, out, _ = cli(env, "--config", cfg, "status", "--no-check")
    assert "25 waiting to be sent:" in out and "… and 5 more" in out
    assert sum(1 for li in out.splitlines() if li.startswith("  #")) == 20
    assert len(json.loads(cli(env, "--config", cfg, "status", "--no-check", "--json")[1])["pending"]) == 25
