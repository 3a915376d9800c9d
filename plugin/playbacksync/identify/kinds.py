"""The kind of item a file is ("movie", "episode" or "" when it cannot be told), and which
provider ids can be compared knowing it.

TMDb and TVDB numbers are per kind: movie 603, show 603 and episode 603 are three
things. So those ids name an item only together with its kind, and an imdb id
(``tt…``, one namespace for everything) is the only id usable without one.
Hosts that know the kind (Kodi's library) pass it in ``MediaRef.kind``; for a
bare file (mpv) it is read from the name with guessit: an episode needs a
season/episode marker, a movie needs a year, anything else stays unknown.
"""
from __future__ import annotations

import functools
import os
from typing import Optional

MOVIE, EPISODE = "movie", "episode"
HOST_KINDS = (MOVIE, EPISODE)
GLOBAL_PROVIDERS = ("imdb",)  # ids that name one thing whatever its kind
# Ids of the show an episode belongs to, as hosts may pass them: never an episode's own id.
SERIES_PREFIXES = ("series", "show", "tvshow", "season")


def normalize_kind(kind: Optional[str]) -> str:
    kind = (kind or "").strip().lower()
    return kind if kind in HOST_KINDS else ""


def is_series_id(provider: str) -> bool:
    """``tvshow.tvdb``, ``series_tmdb``, ``show-imdb``: an id of the show, not of the episode."""
    for prefix in SERIES_PREFIXES:
        if provider.startswith(prefix) and provider[len(prefix):len(prefix) + 1] in (".", "_", "-", ":"):
            return True
    return False


def usable_without_kind(provider: str, value: str) -> bool:
    return provider in GLOBAL_PROVIDERS and value.startswith("tt") and value[2:].isdigit()


@functools.lru_cache(maxsize=512)
def guess_kind(path: str) -> str:
    """"movie", "episode" or "" from a file name (and its folders); never raises."""
    name = path.replace("\\", "/")
    if "://" in name:
        name = name.split("?", 1)[0]
    name = "/".join(name.split("/")[-3:])  # the show and season folders help, the rest is noise
    if not os.path.splitext(name)[1]:
        return ""
    try:
        from guessit import guessit  # heavy (rebulk, babelfish): only when a kind is needed
        found = guessit(name)
    except Exception:  # not installed, or a name it cannot read: the kind stays unknown
        return ""
    kind = found.get("type")
    if kind == "episode" and found.get("episode") is not None:
        return EPISODE
    if kind == "movie" and found.get("year") is not None and found.get("episode") is None:
        return MOVIE
    return ""
