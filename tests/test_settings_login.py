"""`playback-sync login`: terminal sign-in against the spec-validating fakes, token saved 0600 and masked."""
import io
import os
import stat
import threading

import pytest

from playbacksync.config import Config, PathMapping, ServerConfig
from playbacksync.settings import load_config, save_config
from playbacksync.settings.login import run_login
from tests.fakes.base import fail_on_spec_violations  # noqa: F401
from tests.fakes.emby import EmbyFake
from tests.fakes.jellyfin import JellyfinFake
from tests.fakes.plex import FakePlex, FakePlexTV


def _answers(*values):
    it = iter(values)
    asked = []

    def ask(prompt):
        asked.append(prompt)
        return next(it)

    ask.asked = asked
    return ask


def _no_prompt(prompt):
    raise AssertionError(f"unexpected prompt {prompt!r}")


@pytest.mark.parametrize("fake_cls", [JellyfinFake, EmbyFake], ids=["jellyfin", "emby"])
def test_password_login_saves_token_and_user_id(tmp_path, fake_cls):
    kind = "jellyfin" if fake_cls is JellyfinFake else "emby"
    path = str(tmp_path / "cfg" / "config.toml")
    with fake_cls() as fake:
        uid = fake.add_user("alice", "s3cret-pass")
        out = io.StringIO()
        rc = run_login(kind, path, input=_answers(fake.url, "alice"), getpass=_answers("s3cret-pass"), out=out)
        text = out.getvalue()
        assert rc == 0, text
        server = load_config(path).server(kind)
        assert server.type == kind and server.url == fake.url and server.username == "alice"
        assert server.user_id == uid and fake.tokens[server.token] == uid
        assert server.token not in text and "s3cret-pass" not in text
        assert f"Saved token {server.token[:4]}…" in text and "Connected to Fake" in text
        assert "s3cret-pass" not in open(path).read()
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_wrong_password_saves_nothing(tmp_path):
    path = str(tmp_path / "config.toml")
    with JellyfinFake() as fake:
        fake.add_user("alice", "right")
        out = io.StringIO()
        rc = run_login("jellyfin", path, url=fake.url, username="alice", input=_no_prompt,
                       getpass=_answers("wrong-password"), out=out)
    assert rc == 1
    assert "wrong user name or password" in out.getvalue() and "wrong-password" not in out.getvalue()
    assert not os.path.exists(path)


def test_login_updates_the_existing_server_and_keeps_the_rest(tmp_path):
    path = str(tmp_path / "config.toml")
    with JellyfinFake() as fake:
        fake.add_user("bob", "pw")
        other = ServerConfig(id="px", type="plex", url="http://plex.lan:32400", token="plex-tok-000000")
        mine = ServerConfig(id="home", type="jellyfin", url=fake.url, username="bob",
                            path_mappings=(PathMapping("/mnt", "/data"),))
        save_config(Config(servers=(other, mine)), path)
        rc = run_login("jellyfin", path, input=_answers("", ""), getpass=_answers("pw"), out=io.StringIO())
    assert rc == 0
    config = load_config(path)
    assert [s.id for s in config.servers] == ["px", "home"]
    assert config.server("home").path_mappings == (PathMapping("/mnt", "/data"),) and config.server("home").token
    assert config.server("px") == other


def test_bad_url_is_asked_again(tmp_path):
    path = str(tmp_path / "config.toml")
    with EmbyFake() as fake:
        fake.add_user("alice", "pw")
        out = io.StringIO()
        rc = run_login("emby", path, server_id="living-room", input=_answers("htp://nope", fake.url, "alice"),
                       getpass=_answers("pw"), out=out)
    assert rc == 0
    assert "'htp://nope' is not an http(s) URL" in out.getvalue()
    assert load_config(path).server("living-room").type == "emby"


def test_plex_pin_login(tmp_path):
    path = str(tmp_path / "config.toml")
    with FakePlex() as plex, FakePlexTV() as tv:
        out = io.StringIO()

        def link_when_code_shown():
            for _ in range(200):
                if "enter the code:" in out.getvalue():
                    code = out.getvalue().split("enter the code:")[1].split()[0]
                    tv.link(code, plex.token)
                    return
                threading.Event().wait(0.02)

        t = threading.Thread(target=link_when_code_shown)
        t.start()
        rc = run_login("plex", path, url=plex.url, input=_answers(""), getpass=_no_prompt, out=out,
                       plex_tv_url=tv.url, poll_interval=0.05, timeout=10)
        t.join()
    text = out.getvalue()
    assert rc == 0, text
    assert load_config(path).server("plex").token == plex.token
    assert plex.token not in text and "Connected to Fake Plex" in text


def test_plex_pasted_token_that_the_server_refuses(tmp_path):
    path = str(tmp_path / "config.toml")
    with FakePlex() as plex:
        out = io.StringIO()
        rc = run_login("plex", path, url=plex.url, input=_answers("t"), getpass=_answers("not-the-token-xyz"), out=out)
    assert rc == 1
    assert "refused the token" in out.getvalue() and "not-the-token-xyz" not in out.getvalue()
    assert load_config(path).server("plex").token == "not-the-token-xyz"  # saved, as the message says


def test_broken_config_is_reported_not_overwritten(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[sync]\nwatched_percent = 5\n")
    out = io.StringIO()
    rc = run_login("jellyfin", str(path), input=_no_prompt, getpass=_no_prompt, out=out)
    assert rc == 2 and "sync.watched_percent" in out.getvalue()
    assert path.read_text() == "[sync]\nwatched_percent = 5\n"


@pytest.mark.parametrize("fake_cls", [JellyfinFake, EmbyFake], ids=["jellyfin", "emby"])
def test_login_as_another_user_than_the_entry_is_for_is_refused(tmp_path, fake_cls):
    kind = "jellyfin" if fake_cls is JellyfinFake else "emby"
    path = str(tmp_path / "config.toml")
    with fake_cls() as fake:
        alice = fake.add_user("alice", "pw-a")
        fake.add_user("root", "pw-r", is_admin=True)
        mine = ServerConfig(id="home", type=kind, url=fake.url, username="alice", user_id=alice,
                            token=fake.issue_token(alice))
        save_config(Config(servers=(mine,)), path)
        out = io.StringIO()
        rc = run_login(kind, path, url=fake.url, username="root", input=_no_prompt, getpass=_answers("pw-r"),
                       out=out)
    assert rc == 1
    assert "another user" in out.getvalue() and "Nothing saved" in out.getvalue()
    assert load_config(path).server("home") == mine
