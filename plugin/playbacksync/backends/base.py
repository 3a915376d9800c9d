"""The contract every server type implements, and the failures it reports.

The worker acts on the exception type alone: transient failures are retried
with backoff, auth failures pause the server, permanent failures close the
change as failed with the server's message kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterator, Optional, Sequence

from ..changes import Change


class BackendError(Exception):
    """Base of every failure a backend reports. Messages never hold a token."""


class TransientError(BackendError):
    """Network error, timeout, 5xx or 429: try again later.

    ``retry_after`` is the server's Retry-After in seconds, when it sent one.
    """

    def __init__(self, message: str, retry_after: Optional[float] = None):
        super().__init__(message)
        self.retry_after = retry_after


class AuthError(BackendError):
    """401/403: the token is wrong or revoked. Pause this server; don't retry."""


class PermanentError(BackendError):
    """404 (item gone), 400 and the like: retrying cannot help."""


@dataclass(frozen=True)
class ServerInfo:
    name: str
    server_id: str
    version: str
    product: str = ""


@dataclass(frozen=True)
class ItemState:
    """What the server holds for one item and user."""

    position_ms: int = 0
    played: bool = False
    play_count: int = 0
    last_played_at: Optional[float] = None  # epoch seconds


@dataclass(frozen=True)
class IndexedItem:
    """An item as the identification index stores it."""

    item_id: str
    name: str = ""
    path: str = ""  # the file path as the server sees it
    provider_ids: Dict[str, str] = field(default_factory=dict)  # lower-case keys: imdb, tmdb, tvdb
    duration_ms: Optional[int] = None


class Backend:
    """One server. Implementations: plex.PlexBackend, jellyfin.JellyfinBackend, emby.EmbyBackend."""

    def apply(self, change: Change) -> None:
        """Apply one change (progress, watched or unwatched) to the server.

        Returns when the server has accepted it; raises TransientError,
        AuthError or PermanentError otherwise.
        """
        raise NotImplementedError

    def check(self) -> ServerInfo:
        """Tell whether the server answers, and who it is."""
        raise NotImplementedError

    def read_state(self, item_id: str) -> ItemState:
        """The server's resume position, played flag, play count and last-played time."""
        raise NotImplementedError

    # Ids per batched state read: short enough for any proxy's URL limit (100 GUIDs ~ 3.3 kB).
    STATES_PER_REQUEST = 100

    def item_states(self, item_ids: Sequence[str]) -> Dict[str, ItemState]:
        """The states of many items, in as few requests as the server allows (after an offline spell
        every queued change needs one). Items the server does not have are left out of the answer.
        This default asks item by item; the backends override it with one request per
        ``STATES_PER_REQUEST`` items."""
        out: Dict[str, ItemState] = {}
        for item_id in item_ids:
            try:
                out[item_id] = self.read_state(item_id)
            except PermanentError:
                continue
        return out

    def report_playback(self, state: str, item_id: str, position_ms: int, *, duration_ms: Optional[int],
                        paused: bool, play_session_id: str) -> None:
        """A live "now playing" report, as the server's own clients send one: ``state`` is
        ``start``, ``progress`` or ``stopped``; one ``play_session_id`` per viewing.
        Raises like apply(). The server applies its own rules to it (see README, "Who decides what")."""
        raise NotImplementedError

    def get_item(self, item_id: str) -> Optional[IndexedItem]:
        """One item by id, or None when the server has no such item."""
        raise NotImplementedError

    def iter_items(self, page_size: int = 200) -> Iterator[IndexedItem]:
        """Every playable item with its path and provider ids, fetched page by page."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the HTTP session."""


def chunks(ids: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    """``ids`` in runs of at most ``size``, duplicates dropped, order kept."""
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), size):
        yield unique[start:start + size]
