"""File names that are not valid UTF-8, kept losslessly and shown safely.

POSIX file names are bytes. Python turns the bytes that are not UTF-8 into
lone surrogates ("surrogateescape": b"caf\\xe9" -> "caf\\udce9"), which is
lossless but cannot be encoded as UTF-8: passing such a str to mpv, SQLite,
a log file or the OSD raises UnicodeEncodeError. One rule for each use:

* :func:`lossless` - bytes or str from the OS or mpv -> the str Python uses
  for that file (round-trips with :func:`os.fsencode`);
* :func:`for_player` - what to hand a C API that takes a file name (bytes
  when the name is not valid UTF-8, so the very same file opens);
* :func:`shown` - valid Unicode for messages and logs (undecodable bytes
  shown as U+FFFD);
* :func:`to_sqlite` / :func:`from_sqlite` - a value SQLite stores and gives
  back unchanged (TEXT when valid UTF-8, else the raw bytes as a BLOB).
"""
from __future__ import annotations

import os
from typing import Union

Name = Union[str, bytes]


def is_clean(text: str) -> bool:
    """Whether ``text`` encodes as UTF-8 (no lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def lossless(name: Name) -> str:
    return os.fsdecode(name) if isinstance(name, bytes) else str(name)


def for_player(name: str) -> Name:
    return name if is_clean(name) else os.fsencode(name)


def shown(text: str) -> str:
    if is_clean(text):
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def to_sqlite(name: str) -> Name:
    return name if is_clean(name) else os.fsencode(name)


def from_sqlite(value) -> str:
    return os.fsdecode(value) if isinstance(value, bytes) else value
