"""The shared HTTP layer: TLS verification, keep-alive, make_backend."""
from __future__ import annotations

import subprocess
import sys

import pytest

from playbacksync.backends import make_backend
from playbacksync.backends.base import TransientError
from playbacksync.backends.emby import api_url
from playbacksync.config import ServerConfig
from tests.fakes.base import fail_on_spec_violations, make_self_signed_cert  # noqa: F401
from tests.fakes.jellyfin import JellyfinFake


@pytest.fixture(scope="module")
def tls_fake(tmp_path_factory):
    cert, key = make_self_signed_cert(str(tmp_path_factory.mktemp("tls")))
    fake = JellyfinFake(version="10.10.7", tls=(cert, key)).start()
    fake.cert = cert
    uid = fake.add_user("alice", "pw")
    fake.cfg = dict(id="j", type="jellyfin", url=fake.url, token=fake.issue_token(uid), user_id=uid)
    yield fake
    fake.stop()


def test_tls_verified_by_default(tls_fake):
    assert tls_fake.url.startswith("https://")
    b = make_backend(ServerConfig(**tls_fake.cfg))
    with pytest.raises(TransientError, match="TLS"):
        b.check()
    b.close()


def test_tls_with_ca_bundle(tls_fake):
    b = make_backend(ServerConfig(**tls_fake.cfg, ca_bundle=tls_fake.cert))
    assert b.check().version == "10.10.7"
    b.close()


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_verification_can_be_turned_off(tls_fake):
    b = make_backend(ServerConfig(**tls_fake.cfg, verify_tls=False))
    assert b.check().version == "10.10.7"
    b.close()


def test_one_session_per_server_with_configured_timeouts():
    with JellyfinFake(version="10.11.11") as fake:
        uid = fake.add_user("a", "b")
        b = make_backend(ServerConfig(id="j", type="jellyfin", url=fake.url, token=fake.issue_token(uid),
                                      user_id=uid, connect_timeout=1.5, read_timeout=2.5))
        assert b.http.timeout == (1.5, 2.5)
        session = b.http.session
        b.check()
        per_check = len(fake.requests)  # /System/Info, and /Users/Me: is the token this user's?
        for _ in range(2):
            b.check()
        assert b.http.session is session and len(fake.requests) == 3 * per_check
        b.close()


def test_make_backend_types():
    with pytest.raises(ValueError, match="unknown type 'kodi'"):
        make_backend(ServerConfig(id="x", type="kodi", url="http://127.0.0.1:1"))
    b = make_backend(ServerConfig(id="e", type="emby", url="http://127.0.0.1:1/"))
    assert type(b).__name__ == "EmbyBackend" and b.http.base_url == "http://127.0.0.1:1/emby"
    b.close()


def test_emby_api_url():
    assert api_url("http://h:8096") == "http://h:8096/emby"
    assert api_url("http://h:8096/emby/") == "http://h:8096/emby"
    assert api_url("https://h/media/emby") == "https://h/media/emby"


def test_backends_imported_lazily():
    code = ("import sys; from playbacksync.backends import make_backend; from playbacksync.config import "
            "ServerConfig; make_backend(ServerConfig(id='j', type='jellyfin', url='http://127.0.0.1:1'));"
            "print(sorted(m for m in sys.modules if m.startswith('playbacksync.backends.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "playbacksync.backends.jellyfin" in out
    assert "playbacksync.backends.emby" not in out and "playbacksync.backends.plex" not in out


def _jellyfin_config(fake, **kw):
    uid = fake.add_user("alice", "pw")
    return ServerConfig(id="j", type="jellyfin", url=fake.url, token=fake.issue_token(uid), user_id=uid, **kw)


def test_a_server_that_keeps_connections_open_gets_every_request_on_one():
    # Real servers keep HTTP/1.1 connections open; the client must reuse its connection, not
    # pay a TCP set-up per request (bench W2's floor assumes it).
    with JellyfinFake(version="10.10.7", keep_alive=True) as fake:
        b = make_backend(_jellyfin_config(fake))
        for _ in range(3):
            b.check()
        assert len(fake.requests) >= 6
        assert len({r.client for r in fake.requests}) == 1, [r.client for r in fake.requests]
        b.close()


def test_the_environments_ca_bundle_is_trusted(tls_fake, monkeypatch):
    # Read once when the client is made, as requests reads it on each request.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls_fake.cert)
    b = make_backend(ServerConfig(**tls_fake.cfg))
    assert b.check().version == "10.10.7"
    b.close()


def test_the_environments_proxy_is_used_unless_no_proxy_names_the_server(monkeypatch):
    # The fake stands in for the proxy: it answers the absolute URLs a proxy gets, and
    # records the Host they name.
    with JellyfinFake(version="10.10.7") as proxy:
        cfg = _jellyfin_config(proxy)
        # The server's address is a name nothing resolves: only the proxy can reach it.
        cfg = ServerConfig(**{**cfg.__dict__, "url": "http://jellyfin.invalid:8096"})
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        b = make_backend(cfg)
        assert b.check().version == "10.10.7"
        assert proxy.requests and all(r.host == "jellyfin.invalid:8096" for r in proxy.requests)
        b.close()
        monkeypatch.setenv("NO_PROXY", "jellyfin.invalid")
        b = make_backend(cfg)
        with pytest.raises(TransientError):
            b.check()
        b.close()


def test_a_netrc_entry_for_the_server_does_not_replace_its_credentials(tmp_path, monkeypatch):
    # requests adds .netrc logins as Basic auth over a request's own Authorization header
    # when it reads the environment; the server's token must be what is sent.
    with JellyfinFake(version="10.10.7") as fake:
        netrc = tmp_path / "netrc"
        netrc.write_text("machine 127.0.0.1 login someone password netrc-secret\n")
        netrc.chmod(0o600)
        monkeypatch.setenv("NETRC", str(netrc))
        b = make_backend(_jellyfin_config(fake))
        assert b.check().version == "10.10.7"
        assert not any("Basic" in (r.headers.get("Authorization") or "") for r in fake.requests)
        b.close()
