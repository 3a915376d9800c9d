"""One contract suite for every backend x server version in tests/backend_matrix.py.

Each test acts through the backend and asserts on the fake's STATE.
"""
from __future__ import annotations

import time

import pytest

from playbacksync.backends.base import AuthError, PermanentError
from playbacksync.changes import PROGRESS, UNWATCHED, WATCHED, Change
from tests.backend_matrix import h  # noqa: F401  (the matrix fixture)
from tests.fakes.base import fail_on_spec_violations  # noqa: F401  (fails tests on spec violations)


@pytest.fixture
def backend(h):
    b = h.backend()
    yield b
    b.close()


def change(h, item_id, kind, position_ms=None, created_at=None):
    return Change(media_item_id=item_id, source_id=f"{h.kind}-test", user_id="", change_type=kind,
                  position_ms=position_ms, duration_ms=3_600_000,
                  created_at=time.time() if created_at is None else created_at)


def test_check_reports_name_id_version(h, backend):
    info = backend.check()
    assert (info.name, info.server_id, info.version) == h.expected_info()


def test_progress_sets_resume_point(h, backend):
    item = h.add_item("Progress Movie", "/media/progress.mkv", {"imdb": "tt0000101"})
    backend.apply(change(h, item, PROGRESS, position_ms=1_234_000))
    assert h.state(item).position_ms == 1_234_000
    backend.apply(change(h, item, PROGRESS, position_ms=600_500))  # moving back works too
    assert h.state(item).position_ms == 600_500
    assert h.state(item).played is False


def test_progress_keeps_played_flag_and_count(h, backend):
    item = h.add_item("Rewatch", "/media/rewatch.mkv")
    h.seed_state(item, played=True, play_count=3, last_played_at=1_600_000_000.0)
    backend.apply(change(h, item, PROGRESS, position_ms=900_000))
    s = h.state(item)
    assert (s.position_ms, s.played, s.play_count) == (900_000, True, 3)


def test_watched_then_unwatched(h, backend):
    item = h.add_item("Watch Me", "/media/watch.mkv")
    h.seed_state(item, position_ms=500_000)
    t = time.time()
    backend.apply(change(h, item, WATCHED, created_at=t))
    s = h.state(item)
    assert s.played is True and s.play_count == 1
    assert s.last_played_at == pytest.approx(t, abs=2)
    backend.apply(change(h, item, WATCHED))
    assert h.state(item).play_count == 2
    backend.apply(change(h, item, UNWATCHED))
    assert h.state(item).played is False


def test_read_state_reflects_server(h, backend):
    item = h.add_item("Seeded", "/media/seeded.mkv")
    h.seed_state(item, position_ms=754_000, played=True, play_count=4, last_played_at=1_700_000_123.0)
    s = backend.read_state(item)
    assert (s.position_ms, s.played, s.play_count) == (754_000, True, 4)
    assert s.last_played_at == pytest.approx(1_700_000_123.0, abs=1)
    fresh = h.add_item("Never Played", "/media/fresh.mkv")
    s = backend.read_state(fresh)
    assert (s.position_ms, s.played, s.play_count, s.last_played_at) == (0, False, 0, None)


def test_read_state_after_apply_round_trips(h, backend):
    item = h.add_item("Round Trip", "/media/roundtrip.mkv")
    backend.apply(change(h, item, PROGRESS, position_ms=1_800_000))
    assert backend.read_state(item).position_ms == 1_800_000


def test_get_item_has_path_provider_ids_duration(h, backend):
    item = h.add_item("The Matrix", "/media/movies/The Matrix (1999).mkv",
                      {"imdb": "tt0133093", "tmdb": "603"}, runtime_s=8160)
    got = backend.get_item(item)
    assert got.item_id == item and got.name == "The Matrix"
    assert got.path == "/media/movies/The Matrix (1999).mkv"
    assert got.provider_ids["imdb"] == "tt0133093" and got.provider_ids["tmdb"] == "603"
    assert got.duration_ms == 8_160_000
    assert backend.get_item(h.missing_item_id()) is None


def test_iter_items_pages_through_everything(h, backend):
    mine = {h.add_item(f"Paged {i:02d}", f"/media/paged/{i:02d}.mkv", {"tvdb": str(7000 + i)}) for i in range(7)}
    before = h.list_requests()
    items = list(backend.iter_items(page_size=3))
    got = {i.item_id: i for i in items}
    assert mine <= set(got)
    assert len(got) == len(items)  # nothing listed twice
    for iid in mine:
        assert got[iid].path.startswith("/media/paged/") and got[iid].provider_ids["tvdb"].startswith("70")
    assert h.list_requests() - before >= -(-len(items) // 3)  # really paged


def test_missing_item_is_permanent(h, backend):
    with pytest.raises(PermanentError):
        backend.apply(change(h, h.missing_item_id(), WATCHED))


def test_wrong_token_is_auth_error(h):
    b = h.backend(token="not-the-right-token-000")
    try:
        with pytest.raises(AuthError):
            b.check()
    finally:
        b.close()


def test_sign_in_gives_a_working_token(h):
    if not h.sign_in_supported():
        pytest.skip("no password sign-in for this server type")
    token, user_id = h.sign_in(*h.user_credentials)
    assert token and token != h.token
    assert user_id.replace("-", "") == h.user_id.replace("-", "")
    b = h.backend(token=token, user_id=user_id)
    try:
        assert b.check().server_id == h.expected_info()[1]
        item = h.add_item("After Sign In", "/media/signin.mkv")
        b.apply(change(h, item, WATCHED))
        assert h.state(item).played
    finally:
        b.close()


def test_sign_in_wrong_password(h):
    if not h.sign_in_supported():
        pytest.skip("no password sign-in for this server type")
    with pytest.raises(AuthError):
        h.sign_in(h.user_credentials[0], "wrong-password")


def test_item_states_reads_many_items_in_one_request(h, backend):
    items = [h.add_item(f"Batch {n}", f"/media/batch{n}.mkv") for n in range(5)]
    for n, item in enumerate(items):
        h.seed_state(item, position_ms=(n + 1) * 60_000, played=n == 4, play_count=int(n == 4),
                     last_played_at=1_700_000_000.0 + n)
    backend.check()
    h.fake.clear_log()
    states = backend.item_states([*items, h.missing_item_id(), items[0]])
    assert len(h.fake.requests) == 1  # one round trip for all of them
    assert set(states) == set(items)  # a missing item is left out, duplicates read once
    for n, item in enumerate(items):
        s = states[item]
        assert (s.position_ms, s.played, s.play_count) == ((n + 1) * 60_000, n == 4, int(n == 4))
        assert s.last_played_at == pytest.approx(1_700_000_000.0 + n, abs=1)


def test_item_states_chunks_long_lists(h, backend):
    items = [h.add_item(f"Chunk {n}", f"/media/chunk{n}.mkv") for n in range(7)]
    backend.check()
    h.fake.clear_log()
    backend.STATES_PER_REQUEST = 3
    assert set(backend.item_states(items)) == set(items)
    assert len(h.fake.requests) == 3
