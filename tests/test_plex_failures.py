"""How PlexBackend classifies failures, and where its token may (not) go."""
from __future__ import annotations

import logging

import pytest

from playbacksync.backends.base import AuthError, PermanentError, TransientError
from playbacksync.backends.plex import PlexBackend
from playbacksync.changes import PROGRESS, WATCHED, Change
from playbacksync.config import ServerConfig
from tests.fakes.base import fail_on_spec_violations  # noqa: F401
from tests.fakes.plex import FakePlex

TOKEN = "plex-secret-token-7f3a9c"


@pytest.fixture
def fake():
    with FakePlex(token=TOKEN) as f:
        yield f


def backend_for(fake, **kw) -> PlexBackend:
    cfg = dict(id="plex", type="plex", url=fake.url, token=TOKEN, device_id="dev-1",
               connect_timeout=1.0, read_timeout=1.0)
    cfg.update(kw)
    return PlexBackend(ServerConfig(**cfg))


def watched(item="101"):
    return Change(media_item_id=item, source_id="plex", user_id="", change_type=WATCHED)


def progress(item="101"):
    return Change(media_item_id=item, source_id="plex", user_id="", change_type=PROGRESS,
                  position_ms=30_000, duration_ms=660_000)


CALLS = {
    "apply_watched": lambda b: b.apply(watched()),
    "apply_progress": lambda b: b.apply(progress()),
    "read_state": lambda b: b.read_state("101"),
    "get_item": lambda b: b.get_item("101"),
    "check": lambda b: b.check(),
    "iter_items": lambda b: list(b.iter_items()),
}


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("status,kind", [(500, TransientError), (502, TransientError), (503, TransientError),
                                         (429, TransientError), (401, AuthError), (403, AuthError),
                                         (400, PermanentError)])
def test_status_classification(fake, call, status, kind):
    fake.fail_next(status, body=f"<html>error {status}</html>")
    with pytest.raises(kind) as err:
        CALLS[call](backend_for(fake))
    assert str(status) in str(err.value)
    # Nothing was applied by the failed call.
    assert fake.library.state(TOKEN, "101").view_count == 0


def test_retry_after_is_passed_on(fake):
    fake.fail_next(503, retry_after=7)
    with pytest.raises(TransientError) as err:
        backend_for(fake).apply(watched())
    assert err.value.retry_after == 7.0
    fake.fail_next(429, retry_after=3)
    with pytest.raises(TransientError) as err:
        backend_for(fake).read_state("101")
    assert err.value.retry_after == 3.0


def test_missing_item_is_permanent_but_not_an_error_for_get_item(fake):
    b = backend_for(fake)
    with pytest.raises(PermanentError) as err:
        b.apply(watched("424242"))
    assert "404" in str(err.value)
    assert b.get_item("424242") is None


def test_timeout_is_transient(fake):
    fake.delay(3.0)
    with pytest.raises(TransientError, match="timed out"):
        backend_for(fake, read_timeout=0.3).apply(watched())


def test_stall_mid_body_is_transient(fake):
    fake.delay(3.0, body=True)
    with pytest.raises(TransientError):
        backend_for(fake, read_timeout=0.3).read_state("101")


def test_reset_is_transient(fake):
    fake.reset_next()
    with pytest.raises(TransientError):
        backend_for(fake).read_state("101")


def test_refused_is_transient_and_recovers(fake):
    b = backend_for(fake)
    fake.go_down()
    with pytest.raises(TransientError, match="nothing answers at"):
        b.apply(watched())
    fake.come_back()
    b.apply(watched())
    assert b.read_state("101").play_count == 1


def test_malformed_json_is_transient(fake):
    fake.malformed_next()
    with pytest.raises(TransientError, match="JSON"):
        backend_for(fake).read_state("101")


def test_answer_without_media_container_is_transient(fake):
    fake.fail_next(200, body={"unexpected": True})
    with pytest.raises(TransientError, match="MediaContainer"):
        backend_for(fake).read_state("101")


# --- token hygiene -----------------------------------------------------------------------

def test_token_never_in_a_url(fake):
    b = backend_for(fake)
    b.check()
    b.apply(progress())
    b.apply(watched())
    b.read_state("101")
    list(b.iter_items(page_size=2))
    b.item_for_part(1002)
    assert len(fake.requests) > 8
    for r in fake.requests:
        assert TOKEN not in r.path
        assert all(TOKEN not in v for vs in r.query.values() for v in vs)
        assert not any(k.lower() == "x-plex-token" for k in r.query)
        assert r.path == "/identity" or r.headers.get("X-Plex-Token") == TOKEN


def test_token_never_in_errors_or_logs(fake, caplog):
    caplog.set_level(logging.DEBUG)
    b = backend_for(fake)
    errors = []
    # The server echoes the token back in an error body (some proxies do).
    for status in (500, 401, 400):
        fake.fail_next(status, body=f"bad request with X-Plex-Token={TOKEN} and token {TOKEN}")
        with pytest.raises(Exception) as err:
            b.apply(watched())
        errors.append(str(err.value))
    fake.fail_next(503, body={"message": f"upstream said {TOKEN}"})
    with pytest.raises(TransientError) as err:
        b.read_state("101")
    errors.append(str(err.value))
    fake.go_down()
    with pytest.raises(TransientError) as err:
        b.check()
    errors.append(str(err.value))
    fake.come_back()
    assert errors and all(TOKEN not in e for e in errors), errors
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(b.server.url)


def test_redirect_to_another_host_does_not_carry_the_token(fake):
    with FakePlex(token="token-of-the-other-server") as other:
        fake.redirect_next(other.url)
        with pytest.raises(AuthError):  # the other server got no token, so it refused
            backend_for(fake).read_state("101")
        assert len(other.requests) == 1
        got = other.requests[0]
        assert got.path == "/library/metadata/101"
        assert "X-Plex-Token" not in got.headers
        assert TOKEN not in str(dict(got.headers)) and TOKEN not in str(got.query)


def test_redirect_on_the_same_server_keeps_the_token(fake):
    fake.redirect_next(fake.url, status=307)
    backend_for(fake).apply(watched())
    assert [r.path for r in fake.requests] == ["/:/scrobble", "/:/scrobble"]
    assert fake.requests[1].headers["X-Plex-Token"] == TOKEN
    assert fake.library.state(TOKEN, "101").view_count == 1
