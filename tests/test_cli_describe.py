"""Queue rows in words (cli/describe.py), including rows recorded against a media reference
(issue 11's record-first rows: ``row.media`` with title and kind; ``media_item_id`` None until identified)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pytest

from playbacksync.changes import PENDING, PROGRESS, UNWATCHED, WATCHED, QueuedChange
from playbacksync.cli import describe as d
from playbacksync.tracker.events import MediaRef


@dataclass(frozen=True)
class RecordedChange(QueuedChange):
    """A row as record-first stores it (the shape issue 11 sets: QueuedChange + media)."""

    media: Optional[MediaRef] = None


def row(change_type=PROGRESS, item="abc123", media=None, **kw):
    return RecordedChange(media_item_id=item, source_id="home", user_id="u", change_type=change_type,
                          position_ms=kw.pop("position_ms", 3_733_000), id=7, media=media, **kw)


@pytest.mark.parametrize("change_type, words", [(WATCHED, "watched"), (UNWATCHED, "unwatched"),
                                                (PROGRESS, "stopped at 1:02:13")])
def test_the_change_in_words(change_type, words):
    assert d.change_words(row(change_type)) == words


@pytest.mark.parametrize("title, kind, shown", [
    ("The.Matrix.1999.mkv", "movie", "The Matrix 1999"),
    ("/media/tv/Show.Name.S01E02.Pilot.mkv", "", "Show Name, season 1 episode 2 (Pilot)"),
    ("Show Name - s3e10", "episode", "Show Name, season 3 episode 10"),
    ("Arrival", "movie", "Arrival"),
])
def test_titles_people_recognise(title, kind, shown):
    assert d.pretty_title(title, kind) == shown


def test_a_recorded_reference_is_shown_by_its_title_before_and_after_identification():
    media = MediaRef(path="/films/x.mkv", title="Blade Runner 2049", kind="movie")
    waiting = row(item=None, media=media, status=PENDING, error_message="not in the index yet")
    assert d.waiting_to_identify(waiting) and d.title_of(waiting) == "Blade Runner 2049"
    js = d.row_json(waiting)
    assert js["waiting_to_identify"] and js["item"] is None and js["kind"] == "movie" and js["path"] == "/films/x.mkv"
    identified = row(media=media)
    assert not d.waiting_to_identify(identified) and d.title_of(identified, lambda s, i: "other") == "Blade Runner 2049"


def test_without_a_reference_the_index_name_then_the_id():
    plain = QueuedChange(media_item_id="abc123", source_id="home", user_id="u", change_type=WATCHED, id=3)
    assert d.title_of(plain, lambda s, i: "Arrival" if (s, i) == ("home", "abc123") else None) == "Arrival"
    assert d.title_of(plain, lambda s, i: None) == "item abc123"
    assert d.title_of(plain) == "item abc123"
