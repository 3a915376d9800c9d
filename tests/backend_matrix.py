"""The one place the backend test matrix is declared.

``CASES`` lists every backend x server version the contract, failure and
token-hygiene suites run against. Each case names a ``Harness`` class that
starts the right fake and translates between the suite's neutral words and
that fake's state; the suites never touch a fake's own API directly.

Adding a server type (Plex): write a Harness subclass next to its fake (or
here) implementing the methods below, then append one entry:

    CASES.append(Case("plex", "plex", PlexHarness))

Harness contract (all positions in ms, dates in epoch seconds):
    start() / stop()                 the fake's life (module scope in the suites)
    fake                             the FakeServer (misbehaviour controls, request log)
    server_config(**over)            a ServerConfig for the backend (token and user set)
    backend(**over)                  make_backend(server_config(**over))
    add_item(name, path, provider_ids, runtime_s) -> item id   (provider_ids lower-case keys)
    missing_item_id()                an id in the server's format that it doesn't have
    state(item_id) -> ItemState      read from the FAKE, not over HTTP
    seed_state(item_id, position_ms=, played=, play_count=, last_played_at=)
    expected_info() -> (name, server_id, version)
    sign_in(username, password) -> (token, user_id)    via the backend module's helper;
                                     None from sign_in_supported() skips password tests
    user_credentials -> (username, password) of the seeded user
    list_requests() -> int           how many item-listing requests the fake saw
    token                            the token the backend uses (for hygiene tests)
    token_headers                    header names that may carry the token
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from playbacksync.backends import make_backend
from playbacksync.backends.base import ItemState
from playbacksync.config import ServerConfig
from tests.fakes.emby import EmbyFake
from tests.fakes.jellyfin import VERSIONS as JELLYFIN_VERSIONS
from tests.fakes.jellyfin import JellyfinFake
from tests.fakes.mediabrowser import TICKS_PER_SECOND
from tests.fakes.plex import PlexHarness

# A token that is easy to find in any text it leaks into.
DISTINCTIVE_TOKEN = "tok3nSECRETzq81d7c4e0b9a2f6"

_PROVIDER_KEYS = {"imdb": "Imdb", "tmdb": "Tmdb", "tvdb": "Tvdb"}


class Harness:
    kind = ""
    token_headers: Tuple[str, ...] = ()
    user_credentials = ("alice", "pass-w0rd")

    def __init__(self, version: str = ""):
        self.version = version
        self.fake = None
        self.token = DISTINCTIVE_TOKEN

    def start(self):
        raise NotImplementedError

    def stop(self):
        self.fake.stop()

    def backend(self, **over):
        return make_backend(self.server_config(**over))


class MediaBrowserHarness(Harness):
    """Jellyfin and Emby: same state model (tests/fakes/mediabrowser.py)."""

    token_headers = ("Authorization", "X-Emby-Token", "X-Emby-Authorization", "X-MediaBrowser-Token")

    def make_fake(self):
        raise NotImplementedError

    def start(self):
        self.fake = self.make_fake().start()
        self.user_id = self.fake.add_user(*self.user_credentials)
        self.fake.issue_token(self.user_id, self.token)
        return self

    def server_config(self, **over) -> ServerConfig:
        cfg = dict(id=f"{self.kind}-test", type=self.kind, url=self.fake.url, token=self.token,
                   user_id=self.user_id, device_id="test-device", connect_timeout=2.0, read_timeout=5.0)
        cfg.update(over)
        return ServerConfig(**cfg)

    def add_item(self, name: str, path: str = "", provider_ids: Optional[Dict[str, str]] = None,
                 runtime_s: float = 3600.0) -> str:
        ids = {_PROVIDER_KEYS.get(k, k): v for k, v in (provider_ids or {}).items()}
        return self.fake.add_item(name, path=path, provider_ids=ids, runtime_s=runtime_s)

    def state(self, item_id: str) -> ItemState:
        d = self.fake.user_data(self.user_id, item_id)
        return ItemState(position_ms=d.position_ticks * 1000 // TICKS_PER_SECOND, played=d.played,
                         play_count=d.play_count, last_played_at=d.last_played)

    def seed_state(self, item_id: str, position_ms: int = 0, played: bool = False, play_count: int = 0,
                   last_played_at: Optional[float] = None) -> None:
        self.fake.set_user_data(self.user_id, item_id, position_ticks=position_ms * TICKS_PER_SECOND // 1000,
                                played=played, play_count=play_count, last_played=last_played_at)

    def expected_info(self):
        return self.fake.server_name, self.fake.server_id, self.fake.version

    def list_requests(self) -> int:
        return sum(1 for r in self.fake.requests if r.method == "GET" and r.path.endswith("/Items"))

    def sign_in_supported(self) -> bool:
        return True


class JellyfinHarness(MediaBrowserHarness):
    kind = "jellyfin"

    def make_fake(self):
        return JellyfinFake(version=self.version)

    def missing_item_id(self) -> str:
        return "0123456789abcdef0123456789abcdef"

    def sign_in(self, username, password):
        from playbacksync.backends.jellyfin import sign_in
        return sign_in(self.fake.url, username, password, device_id="test-device")


class EmbyHarness(MediaBrowserHarness):
    kind = "emby"

    def make_fake(self):
        return EmbyFake()

    def missing_item_id(self) -> str:
        return "999999"

    def sign_in(self, username, password):
        from playbacksync.backends.emby import sign_in
        return sign_in(self.fake.url, username, password, device_id="test-device")


@dataclass(frozen=True)
class Case:
    id: str  # pytest id
    kind: str  # server type, as in ServerConfig.type
    harness: Callable[[], Harness]


CASES: List[Case] = [
    *(Case(f"jellyfin-{v}", "jellyfin", (lambda v=v: JellyfinHarness(v))) for v in JELLYFIN_VERSIONS),
    Case("emby-4.8.11", "emby", EmbyHarness),
    Case("plex", "plex", PlexHarness),
]


@pytest.fixture(scope="module", params=CASES, ids=[c.id for c in CASES])
def h(request):
    """One started harness per case, for a whole suite module (import it there)."""
    harness = request.param.harness().start()
    yield harness
    harness.stop()


def backend_then_heal(h: Harness, **over) -> Iterator:
    """For a ``backend`` fixture: yields a backend, then closes it and leaves the fake
    healthy (no queued trouble, up) for the next test."""
    b = h.backend(**over)
    yield b
    b.close()
    h.fake.reset_trouble()
    h.fake.come_back()
