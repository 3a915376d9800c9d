"""Plex PIN sign-in against a fake plex.tv, then the token used on a fake Plex server."""
from __future__ import annotations

import pytest

from playbacksync.backends.base import PermanentError, TransientError
from playbacksync.backends.plex import PlexBackend, client_identifier, poll_pin, request_pin
from playbacksync.changes import WATCHED, Change
from playbacksync.config import ServerConfig
from tests.fakes.base import fail_on_spec_violations  # noqa: F401
from tests.fakes.plex import FakePlex, FakePlexTV


@pytest.fixture
def plextv():
    with FakePlexTV() as f:
        yield f


def test_pin_sign_in_then_sync(plextv):
    with FakePlex(token="linked-account-token-1234") as pms:
        pin_id, code = request_pin("client-a", base_url=plextv.url)
        assert code and isinstance(pin_id, int)
        assert poll_pin(pin_id, "client-a", base_url=plextv.url) is None  # not linked yet
        plextv.link(code, "linked-account-token-1234")  # the viewer types the code at plex.tv/link
        token = poll_pin(pin_id, "client-a", base_url=plextv.url)
        assert token == "linked-account-token-1234"
        created = plextv.requests[0]
        assert created.method == "POST" and created.path == "/api/v2/pins"
        assert all(r.headers["X-Plex-Client-Identifier"] == "client-a" for r in plextv.requests)
        assert all(r.headers["Accept"] == "application/json" for r in plextv.requests)

        b = PlexBackend(ServerConfig(id="p", type="plex", url=pms.url, token=token, device_id="client-a"))
        b.apply(Change("101", "p", "", WATCHED))
        assert b.read_state("101").played


def test_poll_with_another_client_id_or_expired_pin_fails(plextv):
    pin_id, code = request_pin("client-a", base_url=plextv.url)
    with pytest.raises(PermanentError):
        poll_pin(pin_id, "client-b", base_url=plextv.url)
    plextv.expire(pin_id)
    with pytest.raises(PermanentError):
        poll_pin(pin_id, "client-a", base_url=plextv.url)


def test_plex_tv_trouble_is_transient(plextv):
    plextv.fail_next(503, retry_after=5)
    with pytest.raises(TransientError) as err:
        request_pin("client-a", base_url=plextv.url)
    assert err.value.retry_after == 5.0
    plextv.go_down()
    with pytest.raises(TransientError):
        request_pin("client-a", base_url=plextv.url, timeout=1.0)


def test_linked_token_is_kept_out_of_error_texts(plextv):
    pin_id, code = request_pin("client-a", base_url=plextv.url)
    plextv.link(code, "fresh-token-abcdef123")
    assert poll_pin(pin_id, "client-a", base_url=plextv.url) == "fresh-token-abcdef123"
    plextv.fail_next(500, body="server saw fresh-token-abcdef123")
    with pytest.raises(TransientError) as err:
        poll_pin(pin_id, "client-a", base_url=plextv.url)
    assert "fresh-token-abcdef123" not in str(err.value)


def test_client_identifier_is_stable():
    a = ServerConfig(id="home", type="plex", url="http://x")
    assert client_identifier(a) == client_identifier(a)
    assert client_identifier(a) != client_identifier(ServerConfig(id="work", type="plex", url="http://x"))
    assert client_identifier(ServerConfig(id="home", type="plex", url="http://x", device_id="d1")) == "d1"
