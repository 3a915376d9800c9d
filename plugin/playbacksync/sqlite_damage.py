"""Damage SQLite itself does not report, found by reading the files' own format.

SQLite reads a main file cut short as if the missing bytes were zeros, and
drops the frames of a -wal from the first one whose checksum fails, without
an error: rows vanish or come back damaged. :func:`truncation` and
:func:`wal_damage` find both before the file is used (file format:
https://www.sqlite.org/fileformat2.html, sections 1.3 and 4);
:func:`pad_to_length` prepares a copy of a cut file for salvage.
"""
from __future__ import annotations

import os
import sys
from typing import Optional, Tuple


def _layout(path: str) -> Optional[Tuple[int, int, int]]:
    """(file size, page size, pages the header says it holds or 0) of a SQLite main file, or None."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(100)
            size = os.fstat(fh.fileno()).st_size
    except OSError:
        return None
    if len(header) < 100 or not header.startswith(b"SQLite format 3\0"):
        return None  # empty, or not a database at all: SQLite itself says so
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        return None
    pages = int.from_bytes(header[28:32], "big")
    change_counter, valid_for = header[24:28], header[92:96]
    return size, page_size, (pages if change_counter == valid_for else 0)


def truncation(path: str) -> Optional[str]:
    """Why the main file is shorter than it says it is, or None."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return None
    if 0 < size < 100:  # not even a whole header: SQLite would take it for an empty database
        return f"the file is cut inside its header ({size} bytes)"
    layout = _layout(path)
    if layout is None:
        return None
    size, page_size, pages = layout
    if size % page_size:
        return f"the file ends inside a page ({size} bytes, pages of {page_size})"
    if size < pages * page_size:
        return f"the file holds {size // page_size} of its {pages} pages"
    return None


def pad_to_length(path: str) -> None:
    """Give a cut main file (a copy, for salvage) the length its header says, in zeros: SQLite
    then reads what is left instead of refusing the whole file. A page cut in the middle is
    zeroed whole, so no half-read value comes out of it as if it were sound."""
    layout = _layout(path)
    if layout is not None:
        size, page_size, pages = layout
        whole = size - size % page_size
        want = max(pages * page_size, whole + (page_size if size % page_size else 0))
        if want > size or whole < size:
            with open(path, "r+b") as fh:
                fh.truncate(whole)
                fh.truncate(want)
    with open(path, "r+b") as fh:  # header fields SQLite refuses the whole file for: set back
        for offset, size, allowed, value in _HEADER_FIELDS:
            fh.seek(offset)
            if int.from_bytes(fh.read(size), "big") not in allowed:
                fh.seek(offset)
                fh.write(value.to_bytes(size, "big"))


# Header fields with few allowed values (fileformat2.html, 1.3): (offset, size, allowed, usual)
_HEADER_FIELDS = (
    (18, 1, (1, 2), 2),            # write version: legacy or WAL (above 2 the file is read-only)
    (19, 1, (1, 2), 2),            # read version
    (21, 1, (64,), 64),            # payload fractions, fixed by the format
    (22, 1, (32,), 32),
    (23, 1, (32,), 32),
    (44, 4, (1, 2, 3, 4), 4),      # schema format
    (56, 4, (1,), 1),              # text encoding: ours are UTF-8
)


def header_damage(path: str) -> Optional[str]:
    """Which fixed field of the main file's header is damaged, or None."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(100)
    except OSError:
        return None
    if len(header) < 100 or not header.startswith(b"SQLite format 3\0"):
        return None
    for offset, size, allowed, _ in _HEADER_FIELDS:
        if int.from_bytes(header[offset:offset + size], "big") not in allowed:
            return f"its header is damaged (byte {offset})"
    return None


def _wal_checksum(data: bytes, s0: int, s1: int, big_endian: bool) -> Tuple[int, int]:
    import array

    words = array.array("I", data)
    if (sys.byteorder == "big") != big_endian:
        words.byteswap()
    mask = 0xFFFFFFFF
    it = iter(words)
    for a in it:
        s0 = (s0 + a + s1) & mask
        s1 = (s1 + next(it) + s0) & mask
    return s0, s1


def _older_generation(frame_salts: bytes, salts: bytes) -> bool:
    """Whether a frame's salts can be those of an earlier generation of the log: SQLite adds 1 to
    salt-1 at each restart of the log (and draws a new salt-2), so an older frame's salt-1 is a
    little smaller and its salt-2 differs. A bit flipped in a current frame's salts seldom
    looks like that."""
    behind = (int.from_bytes(salts[:4], "big") - int.from_bytes(frame_salts[:4], "big")) & 0xFFFFFFFF
    return 0 < behind < 1 << 20 and frame_salts[4:] != salts[4:]


def _current_frame_after(wal: bytes, off: int, frame: int, salts: bytes) -> bool:
    """Whether a frame of the current generation follows ``off`` (the generation is contiguous)."""
    while off + 24 <= len(wal):
        if wal[off + 8:off + 16] == salts:
            return True
        off += frame
    return False


def wal_damage(path: str) -> Optional[Tuple[str, int, bool, list]]:
    """(what is wrong, how many commits SQLite would drop, whether more may be gone, the pages
    of the frames it drops as (page number, bytes)) when ``path``-wal is damaged, else None.
    "More may be gone" when the log was cut: whatever followed the cut cannot be counted. One
    commit may hold many rows (a salvage carries all its rows in one): :func:`table_rows`
    counts the rows in the dropped pages.

    Frames of an older generation (other salts) end a -wal normally, and so does
    a last frame cut right after its header (a write interrupted between its two
    parts, never acknowledged). A frame of the current generation whose checksum
    fails, or one cut inside its page, is damage: SQLite would silently drop it
    and every frame after it.
    """
    try:
        with open(path + "-wal", "rb") as fh:
            wal = fh.read()
    except OSError:
        return None
    if not wal:
        return None
    if len(wal) < 32:
        return "the -wal is cut inside its header", 0, True, []
    magic, _version, page_size = (int.from_bytes(wal[i:i + 4], "big") for i in (0, 4, 8))
    big = magic & 1 == 1
    sums = _wal_checksum(wal[:24], 0, 0, big)
    if (magic not in (0x377F0682, 0x377F0683) or page_size < 512 or page_size & (page_size - 1)
            or sums != (int.from_bytes(wal[24:28], "big"), int.from_bytes(wal[28:32], "big"))):
        # SQLite ignores the whole log. Count its commits with the main file's page size,
        # and the first frame's salts (the first frame always belongs to the current log).
        layout = _layout(path)
        if layout is None or len(wal) < 56:
            return "the -wal header is damaged", 0, True, []
        frame = 24 + layout[1]
        return ("the -wal header is damaged", _commits(wal, 32, frame, wal[40:48]), False,
                _dropped_pages(wal, 32, frame, wal[40:48]))
    frame, salts = 24 + page_size, wal[16:24]
    off, problem = 32, None
    kept = 32  # the end of the last good commit: SQLite drops every frame after it
    layout = _layout(path)
    size_before = layout[2] if layout else 0  # database size (pages) at the last good commit
    while off + 24 <= len(wal):
        head = wal[off:off + 24]
        if head[8:16] != salts:
            if _older_generation(head[8:16], salts) and not _current_frame_after(wal, off + frame, frame, salts):
                return None  # an older generation's frames: the log ends here
            problem = "a frame header of the -wal is damaged"
            break
        if off + frame > len(wal):
            if len(wal) - off > 24:
                return "the -wal is cut inside its last frame", 1, True, []
            break
        sums = _wal_checksum(head[:8] + wal[off + 24:off + frame], *sums, big)
        if sums != (int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")):
            problem = "a frame of the -wal is damaged"
            break
        size_before = int.from_bytes(head[4:8], "big") or size_before
        off += frame
        if head[4:8] != b"\0\0\0\0":
            kept = off
    if problem is None:
        return None
    return problem, _lost_commits(wal, off, frame, salts, size_before), False, _dropped_pages(wal, kept, frame, salts)


def _dropped_pages(wal: bytes, off: int, frame: int, salts: bytes) -> list:
    """(page number, page) of each whole frame of the log with ``salts`` from ``off`` on."""
    pages = []
    while off + frame <= len(wal) and wal[off + 8:off + 16] == salts:
        pages.append((int.from_bytes(wal[off:off + 4], "big"), wal[off + 24:off + frame]))
        off += frame
    return pages


def _varint(buf: bytes, at: int) -> Tuple[int, int]:
    """SQLite's varint at ``at``: (value, offset after it); IndexError past the end."""
    value = 0
    for k in range(9):
        byte = buf[at]
        at += 1
        if k == 8:
            return (value << 8) | byte, at
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            break
    return value, at


def table_rows(pages: list, min_columns: int) -> set:
    """Row ids of the records with at least ``min_columns`` columns in the table-leaf pages of
    ``pages`` ((number, bytes) pairs, e.g. from :func:`wal_damage`): the rows a dropped part of a
    -wal held. A damaged page may yield a wrong id, not more ids than it has cells."""
    ids = set()
    for number, page in pages:
        head = 100 if number == 1 else 0  # page 1 starts with the file header
        try:
            if page[head] != 0x0D:  # not a table leaf
                continue
            cells = int.from_bytes(page[head + 3:head + 5], "big")
            for c in range(min(cells, len(page) // 4)):
                at = int.from_bytes(page[head + 8 + 2 * c:head + 10 + 2 * c], "big")
                _size, at = _varint(page, at)
                rowid, at = _varint(page, at)
                header, p = _varint(page, at)
                end, columns = min(at + header, len(page)), 0
                while p < end:
                    _type, p = _varint(page, p)
                    columns += 1
                if columns >= min_columns and 0 < rowid < 1 << 48:
                    ids.add(rowid)
        except IndexError:
            continue
    return ids


def _commits(wal: bytes, off: int, frame: int, salts: bytes) -> int:
    """Commit frames from ``off`` on, while the frames are of the log with ``salts``."""
    return len(_commit_sizes(wal, off, frame, salts))


def _commit_sizes(wal: bytes, off: int, frame: int, salts: bytes) -> list:
    sizes = []
    while off + 24 <= len(wal) and wal[off + 8:off + 16] == salts:
        size = int.from_bytes(wal[off + 4:off + 8], "big")
        if size:
            sizes.append(size)
        off += frame
    return sizes


def _lost_commits(wal: bytes, damaged: int, frame: int, salts: bytes, size_before: int) -> int:
    """Commits SQLite drops from the damaged frame at ``damaged`` on.

    The frames after it are counted by their commit marks. The damaged frame's own mark may be
    the damaged byte: it counts when it is the log's last frame (a log ends with a commit), or
    when its mark is a database size that fits between the commits around it. A flip inside
    that 4-byte mark can make the count one off.
    """
    later = _commit_sizes(wal, damaged + frame, frame, salts)
    if damaged + frame + 24 > len(wal) or wal[damaged + frame + 8:damaged + frame + 16] != salts:
        return len(later) + 1  # the last frame of the log
    size = int.from_bytes(wal[damaged + 4:damaged + 8], "big")
    fits = size and size_before <= size <= (later[0] if later else size)
    return len(later) + bool(fits)
