"""What the worker needs of the queue and of identification: small typed contracts.

The worker is written against these, not against ``SyncQueue`` and
``Identifier`` themselves, so it can be read (and tested) knowing only what
each call promises. ``SyncQueue`` (queue/store.py) and ``Identifier``
(identify/identifier.py) satisfy them.
"""
from __future__ import annotations

from typing import Iterable, List, Optional, Protocol, Tuple

from ..changes import QueuedChange
from ..tracker.events import MediaRef


class WorkerQueue(Protocol):
    """The queue operations the worker uses (see queue/store.py for each one's rules)."""

    lease_seconds: float

    def claim(self, source_id: str, *, limit: int = 100, due_only: bool = True) -> List[QueuedChange]:
        """Due pending rows of one server → syncing, ours; per media only its oldest, none
        while one is in flight, none whose earlier send may still land."""

    def resolve_item(self, row_id: int, item_id: str) -> int:
        """Write the identified item into the row and its open siblings of the same media."""

    def make_unresolved_due(self, source_id: str) -> int:
        """Rows of the server still waiting to identify are due now (its index refreshed)."""

    def forget_identified(self, source_id: str, before: float, why: str) -> Tuple[int, int]:
        """Another server answers at the address: identified rows not sent are identified again
        (URL or nothing to go by: failed with ``why``)."""

    def begin_send(self, row_id: int, unsure_for: float, seen_play_count: Optional[int] = None) -> bool:
        """Durably note that a write of our claimed row goes out now; False: not ours, send nothing."""

    def extend_lease(self, ids: Iterable[int]) -> int:
        """Renew our claim on rows still being sent."""

    def mark_synced(self, row_id: int, *, resolution: str = "applied", note: Optional[str] = None) -> bool:
        """Close a row: applied, or superseded with the reason."""

    def mark_retry(self, row_id: int, error: str, next_attempt_at: float, *, count_attempt: bool = True,
                   in_doubt: bool = False) -> bool:
        """Our row back to pending, not before ``next_attempt_at``; ``in_doubt``: our write may still land."""

    def mark_failed(self, row_id: int, error: str, *, in_doubt: bool = False) -> bool:
        """Our row (or a pending one) → failed, kept and retryable (``in_doubt``: its last write may still land)."""

    def release(self, ids: Iterable[int]) -> int:
        """Our rows back to pending, due now, no attempt counted (a send in doubt stays in doubt)."""

    def recover_stale(self) -> int:
        """Rows in syncing whose owner is provably dead (owner lock free) or whose lease ran out → pending."""

    def retry_failed(self, source_id: Optional[str] = None) -> int:
        """Failed rows back to pending."""

    def prune(self, now: Optional[float] = None) -> int:
        """Delete old synced rows."""


class MatchLike(Protocol):
    item_id: Optional[str]
    reason: str
    final: bool


class Resolver(Protocol):
    """Identification as the worker uses it: one media reference on one server, never blocking."""

    def identify_one(self, server_id: str, media: MediaRef, *, wait: float = 0) -> MatchLike:
        """The server's item for ``media`` (item_id None on a miss, with the reason; ``final``
        True only when trying again later cannot help). The answer is one the server has just
        borne out (the Identifier's default), since the worker writes to it."""
