"""File paths as components, and per-server path mappings.

Paths are compared component by component, never as string prefixes, so
``/media/movies`` does not cover ``/media/movies2/x``. Three styles:

- POSIX ``/a/b``: case-sensitive; a backslash is an ordinary character.
- Windows ``D:\\a\\b`` or ``D:/a/b`` and UNC ``\\\\nas\\share\\a``: either separator,
  compared case-insensitively (the Windows file system is).
- URLs ``smb://nas/share/a``, ``nfs://nas/export/a`` (any scheme): host
  case-insensitive, credentials dropped; smb paths case-insensitive (SMB
  shares are) and the same file as ``\\\\nas\\share\\a``; other schemes
  case-sensitive. ``file://`` URLs are turned into the local path they name.
- On a server's side (``remote=True``) ``//nas/share/a`` is a UNC path too (a
  Linux path never starts with exactly two slashes there).

Local paths are resolved as the operating system resolves them
(``local_forms``): ``dir/../x`` where ``dir`` is a symlink is the file the
kernel opens, never the one the text suggests.

Names are Unicode-normalised (NFC) so a macOS (NFD) name equals the same
name stored by a Linux server.
"""
from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from typing import Iterable, Optional, Tuple
from urllib.parse import unquote, urlsplit

from ..config import PathMapping

_DRIVE = re.compile(r"^([A-Za-z]):(?:[\\/]|$)")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_FOLD_SCHEMES = ("smb",)

POSIX, WINDOWS, URL = "posix", "windows", "url"


@dataclass(frozen=True)
class SplitPath:
    """A path as root + components. ``fold``: compare case-insensitively."""

    style: str
    root: str  # "/", "d:", "//nas/share", "smb://nas"
    parts: Tuple[str, ...]
    fold: bool

    def key(self) -> str:
        """The comparison key: equal keys name the same file."""
        root = self.root
        if self.style == URL and root.startswith("smb://") and self.parts:  # = \\host\share
            root, parts = "//" + root[6:] + "/" + self.parts[0], self.parts[1:]
        else:
            parts = self.parts
        text = root.rstrip("/") + "/" + "/".join(parts)
        text = unicodedata.normalize("NFC", storable(text))
        return text.casefold() if self.fold else text

    def _cmp(self, part: str) -> str:
        part = unicodedata.normalize("NFC", part)
        return part.casefold() if self.fold else part

    def starts_with(self, prefix: "SplitPath") -> bool:
        """Component-wise prefix test (case rule of the prefix's side)."""
        fold = self.fold or prefix.fold
        a = self.root.casefold() if fold else self.root
        b = prefix.root.casefold() if fold else prefix.root
        if a != b or len(prefix.parts) > len(self.parts):
            return False
        for mine, theirs in zip(self.parts, prefix.parts):
            mine, theirs = unicodedata.normalize("NFC", mine), unicodedata.normalize("NFC", theirs)
            if (mine.casefold() != theirs.casefold()) if fold else (mine != theirs):
                return False
        return True

    def join(self, extra: Iterable[str]) -> "SplitPath":
        return SplitPath(self.style, self.root, self.parts + tuple(extra), self.fold)

    def display(self) -> str:
        """The path written in its own style (for messages)."""
        if self.style == WINDOWS:
            root = self.root.upper() if len(self.root) == 2 else self.root.replace("/", "\\")
            return root + "\\" + "\\".join(self.parts)
        if self.style == URL:
            return self.root + "/" + "/".join(self.parts)
        return "/" + "/".join(self.parts)


def storable(text: str) -> str:
    """``text`` as valid Unicode: undecodable bytes of a file name (lone surrogates,
    as Python reads them) are written as \\xNN escapes, the same way every time."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "backslashreplace")


def _components(text: str, seps: str) -> Tuple[str, ...]:
    """Split on separators, dropping empty and '.' parts and resolving '..'."""
    out = []
    for part in re.split("[" + re.escape(seps) + "]", text):
        if part in ("", "."):
            continue
        if part == "..":
            if out:
                out.pop()
            continue
        out.append(part)
    return tuple(out)


def split_path(path: str, *, cwd: Optional[str] = None, remote: bool = False) -> Optional[SplitPath]:
    """Parse a local or server path; None when it is empty.

    A relative path (the hosts resolve them, but be robust) is taken relative
    to ``cwd`` (default: this process's working directory, which is mpv's
    when it runs in-process). ``remote``: a server's path (``//nas/share`` is UNC).
    """
    if not path:
        return None
    if remote and re.match(r"^//[^/]", path):
        path = "\\\\" + path[2:]
    m = _SCHEME.match(path)
    if m:
        scheme = m.group(1).lower()
        if scheme == "file":
            return _from_file_url(path, cwd)
        return _from_url(path, scheme)
    d = _DRIVE.match(path)
    if d:
        return SplitPath(WINDOWS, d.group(1).lower() + ":", _components(path[2:], "\\/"), True)
    if path.startswith("\\\\"):
        parts = _components(path[2:], "\\/")
        if len(parts) < 2:
            return None  # a UNC path names at least \\server\share
        root = "//" + parts[0].lower() + "/" + parts[1]
        return SplitPath(WINDOWS, root, parts[2:], True)
    if not path.startswith("/"):
        path = os.path.join(cwd or os.getcwd(), path)
        if not path.startswith("/"):  # a Windows cwd
            return split_path(path)
    return SplitPath(POSIX, "/", _components(path, "/"), False)


def _from_url(url: str, scheme: str) -> Optional[SplitPath]:
    # Kodi hands smb/nfs paths over unencoded, as servers store them: no unquoting.
    rest = url[len(scheme) + 3:].split("?", 1)[0]  # a query is no part of a file's name (tokens ride there)
    host, _, tail = rest.partition("/")
    host = host.rpartition("@")[2].lower()  # drop user:password@
    return SplitPath(URL, scheme + "://" + host, _components(tail, "/"), scheme in _FOLD_SCHEMES)


def _from_file_url(url: str, cwd: Optional[str]) -> Optional[SplitPath]:
    parts = urlsplit(url)
    path = unquote(parts.path)
    host = (parts.hostname or "").lower()
    if host and host != "localhost":
        return split_path("\\\\" + host + path.replace("/", "\\"))
    if re.match(r"^/[A-Za-z]:", path):  # file:///C:/x
        return split_path(path[1:])
    return split_path(path or "/", cwd=cwd)


def path_key(path: str) -> Optional[str]:
    """Comparison key of a path as a server stores it (None when empty)."""
    sp = split_path(path, cwd="/", remote=True)
    return sp.key() if sp else None


def local_forms(path: str, *, cwd: Optional[str] = None) -> Tuple[SplitPath, ...]:
    """The names a local file goes by, as the OS resolves them; empty when ``path`` is empty.

    For a POSIX path on this machine: the path with ``..`` resolved the way the kernel does
    (through the symlinks before it), and the fully resolved path (every symlink followed).
    A server that scanned through a symlinked folder stores the first, one that scanned the
    target the second. Other styles (URLs, Windows paths) are returned as parsed.
    """
    sp = split_path(path, cwd=cwd)
    if sp is None or sp.style != POSIX or os.sep != "/":
        return (sp,) if sp else ()
    if "\x00" in path:  # no file has such a name (the OS refuses it): nothing to resolve or match
        return ()
    text = path if path.startswith("/") else os.path.join(cwd or os.getcwd(), path)
    raw = [p for p in text.split("/") if p not in ("", ".")]
    forms = []
    if ".." in raw:
        last = len(raw) - 1 - raw[::-1].index("..")
        head = os.path.realpath("/" + "/".join(raw[: last + 1]))
        forms.append(split_path("/".join([head] + raw[last + 1:]) or "/"))
    else:
        forms.append(sp)
    forms.append(split_path(os.path.realpath(text)))
    return tuple(dict.fromkeys(f for f in forms if f is not None))


@dataclass(frozen=True)
class Mapped:
    """A local path translated to a server's view of it."""

    server_path: SplitPath  # fold set when the mapping says the server compares without case
    mapping: Optional[PathMapping]  # None: no mappings configured, same path on both sides


def _local_sides(mapping: PathMapping) -> Tuple[SplitPath, ...]:
    """A mapping's local folder as written and, when it is (or passes through) a symlink, resolved."""
    forms = [split_path(mapping.local, cwd="/")]
    if forms[0] is not None and forms[0].style == POSIX and os.sep == "/":
        forms.append(split_path(os.path.realpath(mapping.local)))
    return tuple(dict.fromkeys(f for f in forms if f is not None))


def map_to_server(local: SplitPath, mappings: Iterable[PathMapping]) -> Optional[Mapped]:
    """The server's path for a local one, through the most specific covering mapping.

    With no mappings at all the server is taken to see the same paths as this
    machine. With mappings, a path none of them covers is None.
    """
    mappings = tuple(mappings)
    if not mappings:
        return Mapped(local, None)
    best = None
    for m in mappings:
        rp = split_path(m.remote, cwd="/", remote=True)
        if rp is None:
            continue
        for lp in _local_sides(m):
            if local.starts_with(lp) and (best is None or len(lp.parts) > len(best[0].parts)):
                best = (lp, rp, m)
    if best is None:
        return None
    lp, rp, m = best
    mapped = rp.join(local.parts[len(lp.parts):])
    if getattr(m, "ignore_case", False):
        mapped = SplitPath(mapped.style, mapped.root, mapped.parts, True)
    return Mapped(mapped, m)
