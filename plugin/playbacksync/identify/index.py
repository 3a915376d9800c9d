"""A local SQLite index of each server's items: files, provider ids, kinds, Plex parts.

It is a cache (``index.sqlite`` in the data dir, separate from the queue):
nothing in it is lost by rebuilding it, so an unreadable or outdated file is
moved aside and started afresh.

A full refresh (``replace``) pages through the items into staging tables in
short transactions, then swaps the server's rows in one transaction: readers
see the old rows or the new, never half. An incremental refresh (``upsert``)
rewrites only the items that changed, each item whole. A refresh that fails
keeps the old rows and records the error.

A server's rows belong to the identity that server gives itself
(``meta.identity``): ``bind_identity`` drops them all when another server
answers at the same address. Every file of an item (each part, each version)
is a row of ``paths``; ``checks`` caches what the server said about item ids
read from stream URLs, and goes with the server's rows.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional

from ..backends.base import IndexedItem
from .index_file import _SERVER_TABLES, _STAGING, SCHEMA_VERSION, IndexFile, IndexStorageError  # noqa: F401
from .paths import path_key, storable

log = logging.getLogger(__name__)

_BATCH = 500

@dataclass(frozen=True)
class IndexInfo:
    refreshed_at: Optional[float]  # epoch seconds of the last complete refresh; None: never
    item_count: int
    last_error: Optional[str]  # the last refresh's failure, if it failed after the last success
    last_error_at: Optional[float]
    identity: Optional[str] = None  # the id the server gave itself when its rows were fetched
    full_at: Optional[float] = None  # the last full walk (epoch s, this machine's clock)
    since: Optional[float] = None  # the next incremental refresh asks for items saved since (server time)


@dataclass(frozen=True, order=True)
class Candidate:
    """An indexed item as identification weighs it."""

    item_id: str
    kind: str


def normalize_provider(name: str, value: str) -> Optional[tuple]:
    """(provider, value) compared the same way everywhere; None when empty."""
    name = (name or "").strip().lower()
    value = str(value if value is not None else "").strip()
    if "://" in value:  # Plex-style guid: imdb://tt0133093
        value = value.split("://", 1)[1]
    name, value = storable(name), storable(value.strip().lower())
    if not name or not value:
        return None
    return name, value


def _rows_of(item: IndexedItem):
    """(item row, path rows, id rows, part rows) of one item, without the server/refresh column."""
    item_id = storable(str(item.item_id))
    paths = []
    for path in item.all_paths():
        key = path_key(path)
        if key:
            paths.append((item_id, storable(path), key, key.casefold()))
    ids = []
    for name, value in (item.provider_ids or {}).items():
        pv = normalize_provider(name, value)
        if pv:
            ids.append((pv[0], pv[1], item_id))
    parts = [(str(p), item_id) for p in item.part_ids]
    return (item_id, storable(item.name or ""), item.kind or "", item.duration_ms), paths, ids, parts


class ItemIndex(IndexFile):
    """Per-server item index in ``<data_dir>/index.sqlite``. Safe to share across threads."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # callback(server_id) when another server answers at a server's address (its rows were
        # dropped): what was identified from them must be identified again (the worker's queue)
        self.on_rebound: List = []

    # -- writing -----------------------------------------------------------------

    def replace(self, server_id: str, items: Iterable[IndexedItem]) -> int:
        """Replace every row of a server with ``items``; atomic; returns the item count.

        ``items`` may be a lazy iterator (e.g. ``backend.iter_items()``); if it
        raises, nothing changes and the exception propagates.
        """
        import uuid  # only when a server is indexed (it imports platform): not at every start

        refresh_id = uuid.uuid4().hex
        try:
            self._stage(refresh_id, items)
            return self._swap(server_id, refresh_id)
        finally:
            with self._tx() as con:
                for t in _STAGING:
                    con.execute("DELETE FROM %s WHERE refresh_id = ?" % t, (refresh_id,))

    def _stage(self, refresh_id: str, items: Iterable[IndexedItem]) -> None:
        now = self._clock()
        rows, paths, ids, parts = [], [], [], []
        for item in items:
            row, p, i, pt = _rows_of(item)
            if not row[0]:
                continue
            rows.append((refresh_id,) + row + (now,))
            paths.extend((refresh_id,) + r for r in p)
            ids.extend((refresh_id,) + r for r in i)
            parts.extend((refresh_id,) + r for r in pt)
            if len(rows) >= _BATCH:
                self._write_stage(rows, paths, ids, parts)
                rows, paths, ids, parts = [], [], [], []
        self._write_stage(rows, paths, ids, parts)

    def _write_stage(self, rows, paths, ids, parts) -> None:
        if not rows:
            return
        with self._tx() as con:
            con.executemany("INSERT INTO staging_items VALUES (?,?,?,?,?,?)", rows)
            con.executemany("INSERT INTO staging_paths VALUES (?,?,?,?,?)", paths)
            con.executemany("INSERT INTO staging_ids VALUES (?,?,?,?)", ids)
            con.executemany("INSERT INTO staging_parts VALUES (?,?,?)", parts)

    def _swap(self, server_id: str, refresh_id: str) -> int:
        with self._tx() as con:
            for t in _SERVER_TABLES:
                con.execute("DELETE FROM %s WHERE server_id = ?" % t, (server_id,))
            # a later copy of an item (pages shifted during the walk) wins
            con.execute("INSERT OR REPLACE INTO items SELECT ?, item_id, name, kind, duration_ms "
                        "FROM staging_items WHERE refresh_id = ? ORDER BY rowid", (server_id, refresh_id))
            con.execute("INSERT INTO paths SELECT DISTINCT ?, item_id, path, path_key, path_fold "
                        "FROM staging_paths WHERE refresh_id = ?", (server_id, refresh_id))
            con.execute("INSERT OR IGNORE INTO ids SELECT ?, provider, value, item_id "
                        "FROM staging_ids WHERE refresh_id = ?", (server_id, refresh_id))
            con.execute("INSERT OR REPLACE INTO parts SELECT ?, part_id, item_id "
                        "FROM staging_parts WHERE refresh_id = ? ORDER BY rowid", (server_id, refresh_id))
            count = self._count(con, server_id)
            now = self._clock()
            self._meta(con, server_id)
            con.execute("UPDATE meta SET refreshed_at = ?, item_count = ?, last_error = NULL, last_error_at = NULL, "
                        "full_at = ?, since = NULL WHERE server_id = ?", (now, count, now, server_id))
        return count

    def upsert(self, server_id: str, items: Iterable[IndexedItem]) -> int:
        """Write the items that changed (an incremental refresh); returns the item count after.

        An item's rows are rewritten whole. Another item still holding one of its
        files was replaced on the server (deleted, the file re-added): it is dropped.
        """
        batch: List[IndexedItem] = []
        for item in items:
            batch.append(item)
            if len(batch) >= _BATCH:
                self._upsert_batch(server_id, batch)
                batch = []
        self._upsert_batch(server_id, batch)
        with self._tx() as con:
            count = self._count(con, server_id)
            self._meta(con, server_id)
            con.execute("UPDATE meta SET refreshed_at = ?, item_count = ?, last_error = NULL, last_error_at = NULL "
                        "WHERE server_id = ?", (self._clock(), count, server_id))
        return count

    def set_since(self, server_id: str, since: Optional[float]) -> None:
        """Where the next incremental refresh starts (the server's time)."""
        with self._tx() as con:
            con.execute("UPDATE meta SET since = ? WHERE server_id = ?", (since, server_id))

    def _upsert_batch(self, server_id: str, items: List[IndexedItem]) -> None:
        if not items:
            return
        with self._tx() as con:
            for item in items:
                row, paths, ids, parts = _rows_of(item)
                if not row[0]:
                    continue
                stale = {r[0] for p in paths for r in con.execute(
                    "SELECT item_id FROM paths WHERE server_id = ? AND path_key = ?", (server_id, p[2]))}
                for item_id in stale | {row[0]}:
                    self._delete_item(con, server_id, item_id)
                con.execute("INSERT INTO items VALUES (?,?,?,?,?)", (server_id,) + row)
                con.executemany("INSERT INTO paths VALUES (?,?,?,?,?)", [(server_id,) + p for p in paths])
                con.executemany("INSERT OR IGNORE INTO ids VALUES (?,?,?,?)", [(server_id,) + i for i in ids])
                con.executemany("INSERT OR REPLACE INTO parts VALUES (?,?,?)", [(server_id,) + p for p in parts])

    @staticmethod
    def _delete_item(con, server_id: str, item_id: str) -> None:
        for t in _SERVER_TABLES:
            con.execute("DELETE FROM %s WHERE server_id = ? AND item_id = ?" % t, (server_id, item_id))

    @staticmethod
    def _count(con, server_id: str) -> int:
        return con.execute("SELECT COUNT(*) FROM items WHERE server_id = ?", (server_id,)).fetchone()[0]

    @staticmethod
    def _meta(con, server_id: str) -> None:
        con.execute("INSERT OR IGNORE INTO meta (server_id, item_count) VALUES (?, 0)", (server_id,))

    def refresh(self, server_id: str, backend, *, page_size: Optional[int] = None) -> int:
        """Fetch every item of a server and replace its rows; returns the count.

        On failure the old rows stay, the error is recorded (see ``info``) and re-raised.
        """
        started = time.monotonic()
        try:
            items = backend.iter_items(page_size=page_size) if page_size else backend.iter_items()
            count = self.replace(server_id, items)
        except Exception as e:
            self.record_error(server_id, _describe(e))
            raise
        log.info("item index of %s refreshed: %d items in %.1f s", server_id, count,
                 time.monotonic() - started)
        return count

    def record_error(self, server_id: str, message: str) -> None:
        with self._tx() as con:
            self._meta(con, server_id)
            con.execute("UPDATE meta SET last_error = ?, last_error_at = ? WHERE server_id = ?",
                        (message, self._clock(), server_id))

    def bind_identity(self, server_id: str, identity: str) -> bool:
        """Tie a server's rows to the identity it gives itself. True when they were
        another server's (or nobody's) and were dropped: a full refresh must follow."""
        with self._tx() as con:
            row = con.execute("SELECT identity FROM meta WHERE server_id = ?", (server_id,)).fetchone()
            if row is not None and row[0] == identity:
                return False
            another = row is not None and bool(row[0])
            if another:
                log.warning("server %s now answers as another server (%s, was %s): its index is dropped",
                            server_id, identity, row[0])
            for t in _SERVER_TABLES + ("meta",):
                con.execute("DELETE FROM %s WHERE server_id = ?" % t, (server_id,))
            con.execute("INSERT INTO meta (server_id, item_count, identity) VALUES (?, 0, ?)", (server_id, identity))
        if another:
            for callback in list(self.on_rebound):
                try:
                    callback(server_id)
                except Exception:  # a listener's failure must not stop identification
                    log.exception("server %s: a listener of the server's replacement failed", server_id)
        return True

    def remember_part(self, server_id: str, part_id: str, item_id: str) -> None:
        """Cache a Plex part → item lookup until the next refresh."""
        with self._tx() as con:
            con.execute("INSERT OR REPLACE INTO parts VALUES (?, ?, ?)", (server_id, str(part_id), str(item_id)))

    def remember_check(self, server_id: str, item_id: str, kind: Optional[str]) -> None:
        """What the server said of an item id from a stream URL (kind None: no such item)."""
        with self._tx() as con:
            con.execute("INSERT OR REPLACE INTO checks VALUES (?, ?, ?, ?)",
                        (server_id, item_id, kind, self._clock()))

    def forget(self, server_id: str) -> None:
        """Drop a server's rows (it was removed from the settings)."""
        with self._tx() as con:
            for t in _SERVER_TABLES + ("meta",):
                con.execute("DELETE FROM %s WHERE server_id = ?" % t, (server_id,))

    # -- reading -----------------------------------------------------------------

    def info(self, server_id: str) -> IndexInfo:
        with self._read() as con:
            row = con.execute(
                "SELECT refreshed_at, item_count, last_error, last_error_at, identity, full_at, since "
                "FROM meta WHERE server_id = ?", (server_id,)).fetchone()
        if row is None:
            return IndexInfo(None, 0, None, None)
        return IndexInfo(row[0], row[1] or 0, row[2], row[3], row[4], row[5], row[6])

    def by_path_key(self, server_id: str, key: str, *, fold: bool = False) -> List[str]:
        """Items with a file whose key is ``key`` (``fold``: compared without case)."""
        column = "path_fold" if fold else "path_key"
        with self._read() as con:
            rows = con.execute(
                "SELECT item_id FROM paths WHERE server_id = ? AND %s = ?" % column,
                (server_id, key.casefold() if fold else key)).fetchall()
        # deduplicated and sorted here: DISTINCT or ORDER BY would steer SQLite off the key's index
        return sorted({r[0] for r in rows})

    def by_provider(self, server_id: str, provider: str, value: str) -> List[str]:
        return [c.item_id for c in self.candidates(server_id, provider, value)]

    def candidates(self, server_id: str, provider: str, value: str) -> List[Candidate]:
        """The items carrying a provider id, with their kinds."""
        pv = normalize_provider(provider, value)
        if pv is None:
            return []
        with self._read() as con:
            rows = con.execute(
                "SELECT DISTINCT ids.item_id, COALESCE(items.kind, '') FROM ids LEFT JOIN items "
                "ON items.server_id = ids.server_id AND items.item_id = ids.item_id "
                "WHERE ids.server_id = ? AND ids.provider = ? AND ids.value = ?",
                (server_id, pv[0], pv[1])).fetchall()
        return sorted(Candidate(r[0], r[1]) for r in rows)

    def provider_ids(self, server_id: str, item_id: str) -> Dict[str, List[str]]:
        out: Dict[str, List[str]] = {}
        with self._read() as con:
            for p, v in con.execute(
                    "SELECT provider, value FROM ids WHERE server_id = ? AND item_id = ?", (server_id, item_id)):
                out.setdefault(p, []).append(v)
        return out

    def kind_of(self, server_id: str, item_id: str) -> Optional[str]:
        """The indexed item's kind, else a cached URL check's ("" kind unknown); None: not known here.

        A cached check of an id the server did not have reads as "missing"."""
        with self._read() as con:
            row = con.execute("SELECT kind FROM items WHERE server_id = ? AND item_id = ?",
                              (server_id, item_id)).fetchone()
            if row is not None:
                return row[0] or ""
            row = con.execute("SELECT kind FROM checks WHERE server_id = ? AND item_id = ?",
                              (server_id, item_id)).fetchone()
        if row is None:
            return None
        return "missing" if row[0] is None else row[0]

    def item_for_part(self, server_id: str, part_id: str) -> Optional[str]:
        with self._read() as con:
            row = con.execute("SELECT item_id FROM parts WHERE server_id = ? AND part_id = ?",
                              (server_id, str(part_id))).fetchone()
        return row[0] if row else None

    def get(self, server_id: str, item_id: str) -> Optional[IndexedItem]:
        with self._read() as con:
            row = con.execute("SELECT name, kind, duration_ms FROM items WHERE server_id = ? AND item_id = ?",
                              (server_id, item_id)).fetchone()
            if row is None:
                return None
            ids = {p: v for p, v in con.execute(
                "SELECT provider, value FROM ids WHERE server_id = ? AND item_id = ?", (server_id, item_id))}
            paths = tuple(r[0] for r in con.execute(
                "SELECT path FROM paths WHERE server_id = ? AND item_id = ? ORDER BY rowid",
                (server_id, item_id)))
            parts = tuple(r[0] for r in con.execute(
                "SELECT part_id FROM parts WHERE server_id = ? AND item_id = ?", (server_id, item_id)))
        return IndexedItem(item_id=item_id, name=row[0] or "", path=paths[0] if paths else "", provider_ids=ids,
                           duration_ms=row[2], kind=row[1] or "", paths=paths, part_ids=parts)


def _describe(e) -> str:
    """An error (or message) fit to show: no tokens, valid Unicode."""
    from ..redact import redact

    return redact(storable(str(e) or type(e).__name__))
