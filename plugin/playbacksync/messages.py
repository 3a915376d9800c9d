"""A message from the sync service to the viewer that is not about a queued change."""
from __future__ import annotations

from typing import Optional


class ServiceMessage:
    """A message for the viewer that is not about a queued change (e.g. not identified)."""

    def __init__(self, kind: str, source_id: Optional[str], message: str):
        self.kind, self.source_id, self.message, self.change = kind, source_id, message, None

    def __repr__(self):
        return f"ServiceMessage({self.kind!r}, {self.source_id!r}, {self.message!r})"
