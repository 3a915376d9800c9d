"""What identification answers (``Match``) and what it works from (``ParsedMedia``), shared by
identifier.py (who answers, in which order) and methods.py (each way of finding the item)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

from ..config import ServerConfig
from ..tracker.events import MediaRef
from .paths import SplitPath

URL_METHOD, PATH_METHOD, PROVIDER_METHOD = "url", "path", "provider_id"
METHODS = (URL_METHOD, PATH_METHOD, PROVIDER_METHOD)
_PROVIDER_ORDER = ("imdb", "tmdb", "tvdb")
MISS_MARK = "\x00miss"  # marks a reason a refresh could change


@dataclass(frozen=True)
class Match:
    """The item a server holds for what is playing, or None with the reason why not.

    ``final``: the miss is definitive (retrying later cannot help, e.g. the URL
    names a series); False means "waiting to identify".
    """

    item_id: Optional[str]
    method: Optional[str]  # "url" | "path" | "provider_id" | None
    reason: str
    final: bool = False  # True only when trying again later cannot help (a miss's reason says why)

    @property
    def matched(self) -> bool:
        return self.item_id is not None

    def to_json(self) -> dict:
        return {"item_id": self.item_id, "method": self.method, "reason": self.reason}


class FinalMiss(Exception):
    """A definitive miss found while matching."""


@dataclass
class ParsedMedia:
    """What is playing, parsed once for all servers."""

    media: MediaRef
    is_http: bool
    owners: List[ServerConfig]
    locals: Tuple[SplitPath, ...]  # the names the file goes by here (symlinks, ..)
    provider_ids: List[Tuple[str, str]]
    kind: str  # movie | episode | "" (as the host said, else from the file name)
    host_kind: str  # as the host said
    confirm: bool = True  # ask the server before answering (something will be written to the item)
