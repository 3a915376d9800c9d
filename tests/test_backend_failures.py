"""Every failure kind is classified the way the worker needs, for every server type.

TransientError: network errors, timeouts, 5xx, 429 (Retry-After kept); AuthError:
401/403; PermanentError: 404, 400 (server's message kept), other 4xx.
"""
from __future__ import annotations

import email.utils
import time

import pytest

from playbacksync.backends.base import AuthError, PermanentError, TransientError
from playbacksync.backends.http import parse_retry_after
from playbacksync.changes import WATCHED, Change
from tests.backend_matrix import backend_then_heal, h  # noqa: F401  (h: the matrix fixture)
from tests.fakes.base import fail_on_spec_violations  # noqa: F401


@pytest.fixture
def backend(h):
    yield from backend_then_heal(h, connect_timeout=1.0, read_timeout=0.4)


def _http_date(seconds_ahead: float) -> str:
    return email.utils.formatdate(time.time() + seconds_ahead, usegmt=True)


STATUS_CASES = [
    # status, retry_after header, body, expected class, expected retry_after
    (500, None, "boom", TransientError, None),
    (502, None, "<html>bad gateway</html>", TransientError, None),
    (503, "7", "", TransientError, 7.0),
    (429, "http-date+30", "", TransientError, 30.0),
    (401, None, "", AuthError, None),
    (403, None, "", AuthError, None),
    (404, None, "Item not found.", PermanentError, None),
    (418, None, "", PermanentError, None),
]


@pytest.mark.parametrize("status,retry_after,body,cls,expect_ra", STATUS_CASES,
                         ids=[str(c[0]) for c in STATUS_CASES])
def test_status_codes(h, backend, status, retry_after, body, cls, expect_ra):
    ra = _http_date(30) if retry_after == "http-date+30" else retry_after
    h.fake.fail_next(status, retry_after=ra, body=body)
    with pytest.raises(cls) as ei:
        backend.check()
    assert type(ei.value) is cls or issubclass(type(ei.value), cls)
    if cls is TransientError:
        if expect_ra is None:
            assert ei.value.retry_after is None
        else:
            assert ei.value.retry_after == pytest.approx(expect_ra, abs=2)
    assert str(status) in str(ei.value)
    assert backend.check().name  # the next call works again


def test_400_keeps_the_servers_message(h, backend):
    h.fake.fail_next(400, body="Invalid PlaybackPositionTicks value -5")
    with pytest.raises(PermanentError) as ei:
        backend.check()
    assert "Invalid PlaybackPositionTicks value -5" in str(ei.value)
    h.fake.fail_next(400, body={"title": "One or more validation errors occurred."})
    with pytest.raises(PermanentError) as ei:
        backend.check()
    assert "One or more validation errors occurred." in str(ei.value)


def test_read_timeout(h, backend):
    h.fake.delay(3)
    t = time.monotonic()
    with pytest.raises(TransientError) as ei:
        backend.check()
    assert time.monotonic() - t < 2.5
    assert "timed out" in str(ei.value)


def test_slow_body(h, backend):
    h.fake.delay(3, body=True)
    with pytest.raises(TransientError):
        backend.check()


def test_connection_reset(h, backend):
    h.fake.reset_next()
    with pytest.raises(TransientError):
        backend.check()
    assert backend.check().name


def test_connection_refused(h, backend):
    assert backend.check().name  # a kept-alive connection exists
    h.fake.go_down()
    with pytest.raises(TransientError) as ei:
        backend.check()
    # said in words (the kept-alive connection is cut, a new one refused), no library text
    assert ("nothing answers at" in str(ei.value) or "closed the connection" in str(ei.value)) \
        and "Errno" not in str(ei.value) and "Max retries" not in str(ei.value)
    h.fake.come_back()
    assert backend.check().name


def test_malformed_json(h, backend):
    h.fake.malformed_next()
    with pytest.raises(TransientError) as ei:
        backend.check()
    assert "JSON" in str(ei.value)


def test_write_failure_is_classified_too(h, backend):
    item = h.add_item("Fails Once", "/media/fails.mkv")
    backend.check()  # version known, so the next request is the write itself
    h.fake.fail_next(503, retry_after=2)
    ch = Change(media_item_id=item, source_id="s", user_id="", change_type=WATCHED, created_at=time.time())
    with pytest.raises(TransientError):
        backend.apply(ch)
    assert not h.state(item).played  # nothing half-applied
    backend.apply(ch)
    assert h.state(item).played


def test_unknown_host_is_transient(h):
    b = h.backend(url="http://127.0.0.1:9", connect_timeout=0.5, read_timeout=0.5)
    try:
        with pytest.raises(TransientError):
            b.check()
    finally:
        b.close()


def test_parse_retry_after_forms():
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after(_http_date(60)) == pytest.approx(60, abs=2)
    assert parse_retry_after(_http_date(-60)) == 0.0  # already past: retry now
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
