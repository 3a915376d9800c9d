"""Damage anywhere, not only where the examples put it: hypothesis cuts the queue file at any
length, flips any byte of its -wal, or cuts the -wal anywhere, on real files. Whatever the
damage, the queue opens; a change saved from a damaged file is exactly a change that was written
(never a half-read one passed off as sound); the report accounts for them; and damage that the
file format can reveal is never silent."""
from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from playbacksync.queue import SyncQueue

from .test_queue_support import change

TABLE = "playback_sync_queue"
ROWS = 60
WAL_ROWS = 12
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def written(folder):
    con = sqlite3.connect(os.path.join(folder, "queue.sqlite"))
    try:
        return {r[0]: r[1:] for r in con.execute(f"SELECT id, media_item_id, change_type, position_ms FROM {TABLE}")}
    finally:
        con.close()


@pytest.fixture(scope="module")
def cut_template(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("cut"))
    q = SyncQueue(folder)
    for i in range(ROWS):
        q.enqueue_change(change("P", pos=i, item=f"item-{i:04d}-" + "y" * 60))
    q.close()
    return folder, written(folder)


@pytest.fixture(scope="module")
def wal_template(tmp_path_factory):
    """A folder whose changes are all in its -wal (copied while the queue was open)."""
    src = str(tmp_path_factory.mktemp("wal-src"))
    q = SyncQueue(src)
    for i in range(WAL_ROWS):
        q.enqueue_change(change("W", item=f"item-{i:04d}"))
    dst = str(tmp_path_factory.mktemp("wal"))
    for suffix in ("", "-wal"):
        shutil.copyfile(os.path.join(src, "queue.sqlite" + suffix), os.path.join(dst, "queue.sqlite" + suffix))
    q.close()
    probe = tempfile.mkdtemp()
    for suffix in ("", "-wal"):
        shutil.copyfile(os.path.join(dst, "queue.sqlite" + suffix), os.path.join(probe, "queue.sqlite" + suffix))
    rows = written(probe)
    shutil.rmtree(probe)
    assert len(rows) == WAL_ROWS
    return dst, rows


def damaged_copy(template, damage):
    folder = tempfile.mkdtemp(prefix="damaged-")
    for name in os.listdir(template):
        if name.startswith("queue.sqlite"):
            shutil.copyfile(os.path.join(template, name), os.path.join(folder, name))
    damage(folder)
    return folder


def draw_flip(data, template, name):
    """(offset, damage) flipping bits of one byte of ``name``, both drawn by hypothesis."""
    size = os.path.getsize(os.path.join(template, name))
    at = data.draw(st.integers(min_value=0, max_value=size - 1), label="offset")
    mask = data.draw(st.integers(min_value=1, max_value=255), label="xor")

    def flip(folder):
        path = os.path.join(folder, name)
        raw = bytearray(open(path, "rb").read())
        raw[at] ^= mask
        open(path, "wb").write(bytes(raw))

    return at, flip


def draw_cut(data, template, name, shortest):
    """(bytes kept, damage) cutting ``name`` short, the length drawn by hypothesis."""
    size = os.path.getsize(os.path.join(template, name))
    keep = data.draw(st.integers(min_value=shortest, max_value=size - 1), label="bytes kept")

    def cut(folder):
        with open(os.path.join(folder, name), "r+b") as fh:
            fh.truncate(keep)

    return keep, cut


def wal_page_size(template):
    with open(os.path.join(template, "queue.sqlite-wal"), "rb") as fh:
        return int.from_bytes(fh.read(12)[8:12], "big")


def open_and_check(folder, original):
    """Open the damaged folder; every invariant that holds whatever the damage. Returns the report."""
    q = SyncQueue(folder)
    try:
        report = q.damage
        rows = q.rows()
        for r in rows:
            assert (r.media_item_id, r.change_type, r.position_ms) == original[r.id]
            assert r.status == "pending"
        if report is not None:
            assert report.saved == len(rows)
            assert report.saved + report.lost <= len(original)
        else:
            assert len(rows) <= len(original)
        return report, rows
    finally:
        q.close()
        shutil.rmtree(folder, ignore_errors=True)


@SETTINGS
@given(data=st.data())
def test_a_main_file_cut_anywhere(cut_template, data):
    template, original = cut_template
    _, cut = draw_cut(data, template, "queue.sqlite", shortest=1)
    report, _ = open_and_check(damaged_copy(template, cut), original)
    assert report is not None                       # a cut main file is never silent
    # every change accounted for, or the report says how many is unknown
    assert report.unreadable_file or report.maybe_more or report.saved + report.lost == ROWS
    if report.maybe_more or report.unreadable_file:
        assert "maybe more" in report.message() or "could not be read at all" in report.message(), report.message()


@SETTINGS
@given(data=st.data())
def test_any_byte_of_the_wal_flipped(wal_template, data):
    template, original = wal_template
    at, flip = draw_flip(data, template, "queue.sqlite-wal")
    report, rows = open_and_check(damaged_copy(template, flip), original)
    assert report is not None                       # every byte of the log is under a checksum
    in_a_commit_mark = at >= 32 and 4 <= (at - 32) % (24 + wal_page_size(template)) < 8
    if in_a_commit_mark:                            # the damaged byte is the frame's own commit mark
        assert abs(report.saved + report.lost - WAL_ROWS) <= 1
    else:
        assert report.saved + report.lost == WAL_ROWS   # each lost commit counted
    assert sorted(r.id for r in rows) == sorted(original)[:len(rows)]   # the oldest, in order


@SETTINGS
@given(data=st.data())
def test_the_wal_cut_anywhere(wal_template, data):
    template, original = wal_template
    keep, cut = draw_cut(data, template, "queue.sqlite-wal", shortest=0)
    frame = 24 + wal_page_size(template)
    report, rows = open_and_check(damaged_copy(template, cut), original)
    assert sorted(r.id for r in rows) == sorted(original)[:len(rows)]
    # A cut inside a frame's page is damage; one at a frame boundary (or right after a frame's
    # header) looks exactly like a write that never finished, and only that may go unreported.
    inside_a_page = keep >= 32 and (keep - 32) % frame > 24
    if inside_a_page or 0 < keep < 32:
        assert report is not None and report.lost >= 1 - (keep < 32)
        # what followed the cut is gone and cannot be counted: the report says so
        assert report.saved + report.lost == WAL_ROWS or report.maybe_more
        assert "maybe more" in report.message() or report.saved + report.lost == WAL_ROWS


@SETTINGS
@given(data=st.data())
def test_any_byte_of_the_main_file_flipped(cut_template, data):
    """SQLite keeps no checksum on rows, so a flip inside a value no index copies cannot be seen;
    what must hold anyway: the queue opens, holds only states and types a queue writes, and
    nothing is claimed twice or lost without a report."""
    template, original = cut_template
    _, flip = draw_flip(data, template, "queue.sqlite")
    folder = damaged_copy(template, flip)
    q = SyncQueue(folder)
    try:
        rows = q.rows()
        assert all(r.status in ("pending", "failed") and r.change_type == "progress_update" for r in rows)
        assert {r.id for r in rows} <= set(original)
        if q.damage is None:
            assert len(rows) == ROWS                 # nothing dropped without a report
        else:
            assert q.damage.saved == len(rows)
            assert q.damage.unreadable_file or q.damage.maybe_more or q.damage.saved + q.damage.lost == ROWS
        claimed = q.claim("srv", limit=1000)
        assert len({r.id for r in claimed}) == len(claimed)
    finally:
        q.close()
        shutil.rmtree(folder, ignore_errors=True)
