"""The SQLite item index: atomic per-server replace, lookups, failures, odd files."""
import os
import sqlite3
import threading

import pytest

from playbacksync.backends.base import IndexedItem, TransientError
from playbacksync.identify import IndexStorageError, ItemIndex
from playbacksync.identify.paths import path_key


class Clock:
    def __init__(self, t=1_000_000.0):
        self.t = t

    def __call__(self):
        return self.t


def items(n, prefix="/srv/media/m", ids=True):
    for i in range(n):
        yield IndexedItem(item_id="i%d" % i, name="Movie %d" % i, path="%s%d.mkv" % (prefix, i),
                          provider_ids={"imdb": "tt%07d" % i} if ids else {}, duration_ms=1000 * i)


class PagedBackend:
    """Just the Backend contract's iter_items, paging like the real ones; can fail mid-walk."""

    def __init__(self, items, fail_after=None):
        self.items = list(items)
        self.fail_after = fail_after
        self.pages = []

    def iter_items(self, page_size=200):
        for start in range(0, len(self.items), page_size):
            if self.fail_after is not None and start >= self.fail_after:
                raise TransientError("server unreachable: connection refused")
            self.pages.append(start)
            yield from self.items[start:start + page_size]


def test_replace_and_lookups(tmp_path):
    clock = Clock()
    idx = ItemIndex(tmp_path, clock=clock)
    assert idx.path == os.path.join(str(tmp_path), "index.sqlite")
    assert idx.info("jf").refreshed_at is None
    n = idx.replace("jf", [
        IndexedItem("a", "A", r"D:\Media\Movies\A.mkv", {"IMDB": " TT0133093 ", "tmdb": "603"}, 8_160_000),
        IndexedItem("b", "B", "/srv/b.mkv", {"imdb": "imdb://tt0234215"}),
        IndexedItem("c", "C", "", {"tvdb": ""}),  # no path, an empty id: kept, not indexed by them
    ])
    assert n == 3
    info = idx.info("jf")
    assert (info.refreshed_at, info.item_count, info.last_error) == (clock.t, 3, None)
    assert idx.by_path_key("jf", path_key("d:/media/movies/a.MKV")) == ["a"]
    assert idx.by_provider("jf", "imdb", "tt0133093") == ["a"]
    assert idx.by_provider("jf", "IMDb", "TT0234215") == ["b"]
    assert idx.by_provider("jf", "tvdb", "") == []
    assert idx.get("jf", "a") == IndexedItem("a", "A", r"D:\Media\Movies\A.mkv",
                                              {"imdb": "tt0133093", "tmdb": "603"}, 8_160_000,
                                              paths=(r"D:\Media\Movies\A.mkv",))
    assert idx.by_provider("other", "imdb", "tt0133093") == []  # servers never mix


def test_replace_is_per_server_and_total(tmp_path):
    idx = ItemIndex(tmp_path)
    idx.replace("jf", items(5))
    idx.replace("emby", items(3, prefix="/e/m"))
    idx.replace("jf", items(2, prefix="/new/m"))
    assert idx.info("jf").item_count == 2 and idx.info("emby").item_count == 3
    assert idx.by_path_key("jf", path_key("/srv/media/m4.mkv")) == []  # old rows are gone
    assert idx.by_path_key("jf", path_key("/new/m1.mkv")) == ["i1"]
    assert idx.by_path_key("emby", path_key("/e/m2.mkv")) == ["i2"]
    assert idx.by_provider("jf", "imdb", "tt0000004") == []


def test_duplicate_items_in_one_walk_count_once(tmp_path):
    # pages shift when the library changes during a walk: an item can come twice
    idx = ItemIndex(tmp_path)
    twice = [IndexedItem("x", "X", "/a.mkv", {"imdb": "tt1"}), IndexedItem("x", "X", "/b.mkv", {"imdb": "tt1"})]
    assert idx.replace("s", twice) == 1
    assert idx.by_provider("s", "imdb", "tt1") == ["x"]
    assert idx.by_path_key("s", path_key("/b.mkv")) == ["x"]  # the later copy wins


def test_failed_refresh_keeps_old_rows_and_records_why(tmp_path):
    clock = Clock()
    idx = ItemIndex(tmp_path, clock=clock)
    assert idx.refresh("jf", PagedBackend(items(450)), page_size=100) == 450
    first = idx.info("jf").refreshed_at
    clock.t += 600
    backend = PagedBackend(items(450, prefix="/changed/m"), fail_after=300)
    with pytest.raises(TransientError):
        idx.refresh("jf", backend, page_size=100)
    assert backend.pages == [0, 100, 200]  # it did get part-way
    info = idx.info("jf")
    assert (info.refreshed_at, info.item_count) == (first, 450)
    assert info.last_error == "server unreachable: connection refused" and info.last_error_at == clock.t
    assert idx.by_path_key("jf", path_key("/srv/media/m449.mkv")) == ["i449"]
    assert idx.by_path_key("jf", path_key("/changed/m1.mkv")) == []
    # no staging rows left behind
    con = sqlite3.connect(idx.path)
    assert con.execute("SELECT COUNT(*) FROM staging_items").fetchone()[0] == 0
    assert con.execute("SELECT COUNT(*) FROM staging_ids").fetchone()[0] == 0
    # a later success clears the error
    clock.t += 60
    idx.refresh("jf", PagedBackend(items(3)))
    assert idx.info("jf").last_error is None and idx.info("jf").item_count == 3


def test_readers_see_old_or_new_rows_never_half(tmp_path):
    idx = ItemIndex(tmp_path)
    idx.replace("s", items(1000, prefix="/old/m"))
    release = threading.Event()
    seen = []

    def slow_items():
        for i, it in enumerate(items(1000, prefix="/new/m")):
            if i == 600:  # two staging batches are written by now
                release.set()
            yield it

    t = threading.Thread(target=idx.replace, args=("s", slow_items()))
    t.start()
    release.wait(10)
    while t.is_alive():
        other = ItemIndex(tmp_path)  # another connection, as another process would have
        old = len(other.by_path_key("s", path_key("/old/m999.mkv")))
        new = len(other.by_path_key("s", path_key("/new/m999.mkv")))
        seen.append((old, new))
        other.close()
    t.join()
    assert seen and all(s in ((1, 0), (0, 1)) for s in seen)
    assert idx.by_path_key("s", path_key("/new/m999.mkv")) == ["i999"]


def test_odd_names_round_trip(tmp_path):
    idx = ItemIndex(tmp_path / "dir with spaces ü")
    name = "Le film\nà deux lignes \u6f22\u5b57 " + "y" * 3000 + ".mkv"
    idx.replace("s", [IndexedItem("1", name, "/srv/" + name, {"imdb": "tt1"})])
    assert idx.by_path_key("s", path_key("/srv/" + name)) == ["1"]
    assert idx.get("s", "1").name == name


def test_parts_and_forget(tmp_path):
    idx = ItemIndex(tmp_path)
    idx.remember_part("plex", "99", "4242")
    assert idx.item_for_part("plex", "99") == "4242" and idx.item_for_part("plex", "98") is None
    idx.replace("plex", items(2))
    assert idx.item_for_part("plex", "99") is None  # a refresh replaces cached part lookups
    idx.forget("plex")
    assert idx.info("plex").refreshed_at is None and idx.by_provider("plex", "imdb", "tt0000001") == []


def test_unreadable_file_is_moved_aside_and_rebuilt(tmp_path):
    (tmp_path / "index.sqlite").write_bytes(b"this is not a database" * 100)
    idx = ItemIndex(tmp_path)
    assert idx.replace("s", items(2)) == 2
    aside = [p for p in os.listdir(tmp_path) if p.startswith("index.sqlite.unreadable-")]
    assert len(aside) == 1
    assert (tmp_path / aside[0]).read_bytes().startswith(b"this is not a database")


def test_older_layout_is_rebuilt(tmp_path):
    con = sqlite3.connect(str(tmp_path / "index.sqlite"))
    con.execute("CREATE TABLE items (x)")
    con.execute("PRAGMA user_version=99")
    con.commit()
    con.close()
    idx = ItemIndex(tmp_path)
    assert idx.replace("s", items(1)) == 1


def test_unusable_data_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(IndexStorageError) as e:
        ItemIndex(blocker / "sub")
    assert str(blocker / "sub") in str(e.value)


def test_lookups_use_an_index_not_a_scan(tmp_path):
    # without statistics SQLite once chose a full scan for these (ORDER BY, covering keys)
    idx = ItemIndex(tmp_path)
    idx.replace("s", items(50))
    seen = []
    with idx._db.session("trace") as traced:  # back in the pool: the lookups below reuse it
        traced.set_trace_callback(seen.append)  # the statements the lookups really run
    idx.by_path_key("s", path_key("/srv/media/m1.mkv"))
    idx.by_provider("s", "imdb", "tt0000001")
    idx.provider_ids("s", "i1")
    traced.set_trace_callback(None)
    con = sqlite3.connect(idx.path)
    assert len(seen) == 3
    for statement in seen:
        plan = " ".join(str(r) for r in con.execute("EXPLAIN QUERY PLAN " + statement))
        assert "SCAN" not in plan and ("path_key=?" in plan or "value=?" in plan or "item_id=?" in plan), plan
