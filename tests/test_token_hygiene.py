"""Tokens stay in headers to their own server: never in messages, logs or other hosts.

Also: the fakes really reject what the specs forbid (or the suites prove nothing).
"""
from __future__ import annotations

import logging

import pytest
import requests

from playbacksync import __version__
from playbacksync.backends.base import AuthError, BackendError, TransientError
from playbacksync.backends.http import _SameOriginSession, redact, register_secret
from tests.backend_matrix import DISTINCTIVE_TOKEN, backend_then_heal, h  # noqa: F401  (h: the matrix fixture)
from tests.fakes.base import fail_on_spec_violations  # noqa: F401
from tests.fakes.emby import EmbyFake
from tests.fakes.jellyfin import JellyfinFake


@pytest.fixture
def backend(h):
    yield from backend_then_heal(h, connect_timeout=0.5, read_timeout=0.4)


def _assert_clean(text: str) -> None:
    assert DISTINCTIVE_TOKEN not in text
    assert DISTINCTIVE_TOKEN[:12] not in text


FAILURES = {
    "401-echo": lambda f: f.fail_next(401, body=f"token {DISTINCTIVE_TOKEN} is revoked"),
    "500-echo": lambda f: f.fail_next(500, body=f"GET /x?api_key={DISTINCTIVE_TOKEN} failed"),
    "400-echo": lambda f: f.fail_next(400, body={"message": f'bad header Token="{DISTINCTIVE_TOKEN}"'}),
    "timeout": lambda f: f.delay(2),
    "reset": lambda f: f.reset_next(),
    "refused": lambda f: f.go_down(),
    "malformed": lambda f: f.malformed_next(),
}


@pytest.mark.parametrize("kind", list(FAILURES))
def test_no_token_in_errors_or_logs(h, backend, caplog, kind):
    caplog.set_level(logging.DEBUG)  # urllib3 and requests log at debug
    FAILURES[kind](h.fake)
    with pytest.raises(BackendError) as ei:
        backend.check()
    for text in (str(ei.value), repr(ei.value), caplog.text):
        _assert_clean(text)
    assert ei.value.__cause__ is None or DISTINCTIVE_TOKEN not in str(ei.value.__cause__)


def test_token_sent_only_as_header(h, backend):
    h.fake.clear_log()
    backend.check()
    item = h.add_item("Header Only", "/media/header.mkv")
    backend.read_state(item)
    carried = 0
    for r in h.fake.requests:
        assert DISTINCTIVE_TOKEN not in r.path
        assert all(DISTINCTIVE_TOKEN not in v for vs in r.query.values() for v in vs)
        assert DISTINCTIVE_TOKEN not in r.body.decode("utf-8", "replace")
        carried += any(DISTINCTIVE_TOKEN in r.headers.get(name, "") for name in h.token_headers)
    assert carried  # (some servers answer a public route, e.g. Plex /identity, without it)


def test_user_agent_names_plugin_and_version(h, backend):
    h.fake.clear_log()
    backend.check()
    ua = h.fake.requests[-1].headers.get("User-Agent", "")
    assert "PlaybackSync" in ua and __version__ in ua


@pytest.mark.parametrize("other_host", ["127.0.0.2", "127.0.0.1"], ids=["other-host", "other-port"])
def test_redirect_elsewhere_drops_token(h, backend, other_host):
    other = type(h.fake)(**({"version": h.fake.version} if isinstance(h.fake, JellyfinFake) else {}),
                         host=other_host)
    other.start()
    try:
        h.fake.redirect_next(other.url)
        try:
            backend.check()  # the other host got no token: it refuses (401), or its answer is refused
        except (AuthError, TransientError):
            pass
        assert other.requests, "the redirect was not followed"
        for r in other.requests:
            for name, value in r.headers.items():
                assert DISTINCTIVE_TOKEN not in value, f"{name} carried the token to {other.url}"
    finally:
        other.stop()


def test_redirect_within_the_server_keeps_working(h, backend):
    h.fake.redirect_next(h.fake.url)
    assert backend.check().server_id == h.expected_info()[1]


def test_rebuild_auth_strips_on_scheme_change():
    s = _SameOriginSession("http://media.example:8096")
    for url, kept in [("http://media.example:8096/x", True), ("https://media.example:8096/x", False),
                      ("http://media.example:8097/x", False), ("http://other.example:8096/x", False),
                      ("http://MEDIA.example:8096/y", True)]:
        req = requests.Request("GET", url, headers={"X-Plex-Token": "t", "X-Emby-Token": "t",
                                                    "Authorization": "MediaBrowser Token=\"t\""}).prepare()
        resp = requests.Response()
        resp.request = requests.Request("GET", "http://media.example:8096/a").prepare()
        s.rebuild_auth(req, resp)
        present = {k for k in ("X-Plex-Token", "X-Emby-Token", "Authorization") if k in req.headers}
        assert present == ({"X-Plex-Token", "X-Emby-Token", "Authorization"} if kept else set()), url


def test_sign_in_failure_hides_password(h, caplog):
    if not h.sign_in_supported():
        pytest.skip("no password sign-in")
    caplog.set_level(logging.DEBUG)
    secret = "Sup3r-Secret-Passw0rd"
    with pytest.raises(AuthError) as ei:
        h.sign_in(h.user_credentials[0], secret)
    assert secret not in str(ei.value) and secret not in caplog.text


@pytest.mark.parametrize("text,leak", [
    ("GET http://h:32400/library?X-Plex-Token=abcDEF123456&x=1", "abcDEF123456"),
    ("GET http://h/emby/Items?api_key=abcDEF123456", "abcDEF123456"),
    ("GET http://h/Items?ApiKey=abcDEF123456", "abcDEF123456"),
    ('Authorization: MediaBrowser Client="Playback Sync", Token="abcDEF123456"', "abcDEF123456"),
    ("X-Emby-Token: abcDEF123456", "abcDEF123456"),
    ('{"AccessToken": "abcDEF123456"}', "abcDEF123456"),
])
def test_redact_forms(text, leak):
    out = redact(text)
    assert leak not in out and "***" in out


def test_redact_known_values_anywhere():
    register_secret("kn0wn-value-77xx")
    assert redact("path /a/kn0wn-value-77xx/b") == "path /a/***/b"
    assert redact("nothing secret here") == "nothing secret here"


# -- the fakes are strict -----------------------------------------------------

def test_jellyfin_fake_rejects_what_the_spec_forbids():
    with JellyfinFake(version="10.10.7") as fake:
        uid = fake.add_user("u", "p")
        tok = fake.issue_token(uid)
        auth = {"Authorization": f'MediaBrowser Client="t", Device="d", DeviceId="i", Version="1", Token="{tok}"'}
        # A non-id item id, an unknown enum in fields, a route 10.10 doesn't have.
        bad = [requests.post(f"{fake.url}/UserPlayedItems/not-an-id", headers=auth),
               requests.get(f"{fake.url}/Items", params={"fields": "NoSuchField"}, headers=auth),
               requests.get(f"{fake.url}/UserItems/x/Nope", headers=auth)]
        assert [r.status_code for r in bad] == [400, 400, 404]
        assert len(fake.violations) == 3
        # 10.8's played route is not in 10.9's spec: accepted here only because real servers do.
        assert fake.user_data(uid, fake.add_item("m")).played is False
        fake.violations.clear()
    with pytest.raises(AssertionError, match="spec rejects"):
        with JellyfinFake(version="10.9.11") as fake:
            requests.get(f"{fake.url}/Items", params={"startIndex": "abc"})


def test_jellyfin_10_8_fake_has_no_userdata_route():
    with JellyfinFake(version="10.8.13") as fake:
        r = requests.post(f"{fake.url}/UserItems/0123456789abcdef0123456789abcdef/UserData", json={})
        assert r.status_code == 404
        assert fake.violations
        fake.violations.clear()


def test_emby_fake_rejects_what_the_spec_forbids():
    with EmbyFake() as fake:
        uid = fake.add_user("u", "p")
        tok = fake.issue_token(uid)
        r = requests.get(f"{fake.url}/emby/Users/{uid}/Items", params={"StartIndex": "first"},
                         headers={"X-Emby-Token": tok})
        assert r.status_code == 400 and fake.violations
        fake.violations.clear()
        r = requests.post(f"{fake.url}/emby/Users/AuthenticateByName", json={"Username": "u", "Pw": "p"})
        assert r.status_code == 400  # X-Emby-Authorization is a required header
        assert fake.violations
        fake.violations.clear()


@pytest.mark.parametrize("version,accepted", [("10.10.7", True), ("12.0.0", False)])
def test_legacy_token_header(version, accepted):
    with JellyfinFake(version=version) as fake:
        tok = fake.issue_token(fake.add_user("u", "p"))
        r = requests.get(f"{fake.url}/System/Info", headers={"X-Emby-Token": tok})
        assert (r.status_code == 200) is accepted
