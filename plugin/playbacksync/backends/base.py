"""The contract every server type implements, and the failures it reports.

The worker acts on the exception type alone: transient failures are retried
with backoff, auth failures pause the server, permanent failures close the
change as failed with the server's message kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterator, Optional, Sequence, Tuple

from ..changes import Change


class BackendError(Exception):
    """Base of every failure a backend reports. Messages never hold a token."""


class TransientError(BackendError):
    """Network error, timeout, 5xx or 429: try again later.

    ``retry_after`` is the server's Retry-After in seconds, when it sent one.
    ``answered``: the server itself answered that it did not do the request
    (429, 500, 501, 503); otherwise (no answer, a timeout, a gateway's 502/504,
    an unreadable 2xx) a write may have been applied, or may still be.
    ``not_sent``: no connection was made (refused, unreachable, connect timeout): the
    request never left, so a write cannot land.
    """

    def __init__(self, message: str, retry_after: Optional[float] = None, *, answered: bool = False,
                 not_sent: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.answered = answered
        self.not_sent = not_sent


class AuthError(BackendError):
    """401/403: the token is wrong or revoked. Pause this server; don't retry."""


class WrongUserToken(AuthError):
    """The token works but is another user's: writes would land on that user (the message says whose)."""


class PermanentError(BackendError):
    """404 (item gone), 400 and the like: retrying cannot help."""


class NotFoundError(PermanentError):
    """404: the item (or route) is not on the server."""


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
    # What the item is: "movie" | "episode" | "video" (playable, kind unknown) | "series" |
    # "season" | "folder" | "other" (not playable). Provider ids only compare within a kind.
    kind: str = ""
    # Every file of the item: each part (cd1/cd2) and each version. ``path`` is the first.
    paths: Tuple[str, ...] = ()
    part_ids: Tuple[str, ...] = ()  # Plex media parts (stream URLs name them)
    updated_at: Optional[float] = None  # the server's last-saved time (epoch s), for incremental refreshes

    @property
    def playable(self) -> bool:
        return self.kind in PLAYABLE_KINDS

    def all_paths(self) -> Tuple[str, ...]:
        return self.paths or ((self.path,) if self.path else ())


PLAYABLE_KINDS = ("movie", "episode", "video")


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

    # Listing pages: no server documents a maximum page size; pages of this many items
    # keep one answer in the low megabytes while 100,000 items take 100 requests.
    page_size: int = 1000

    def identity(self) -> str:
        """The id the server gives itself (Jellyfin/Emby ServerId, Plex machineIdentifier).

        The item index is tied to it: another server behind the same address has other item ids.
        """
        raise NotImplementedError

    def iter_items(self, page_size: Optional[int] = None, *,
                   since: Optional[float] = None) -> Iterator[IndexedItem]:
        """Every playable item with its paths and provider ids, fetched page by page.

        ``since`` (epoch seconds of the server's clock): only items saved since then.
        """
        raise NotImplementedError

    def count_items(self) -> Optional[int]:
        """How many playable items the server lists (None: cannot tell cheaply)."""
        return None

    def abort_requests(self) -> None:
        """Cut this backend's requests in flight (called from another thread by the worker's
        ``stop()`` at its deadline); each fails at once as a lost connection, outcome unknown."""
        http = getattr(self, "http", None)
        if http is not None:
            http.abort()

    def close(self) -> None:
        """Release the HTTP session."""


def chunks(ids: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    """``ids`` in runs of at most ``size``, duplicates dropped, order kept."""
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), size):
        yield unique[start:start + size]
