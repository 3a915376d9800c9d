"""Tracker rules as tables: events in, changes out (no player needed)."""
import math

import pytest
from hypothesis import given, settings, strategies as st

from playbacksync.changes import PROGRESS, UNWATCHED, WATCHED
from playbacksync.tracker import MediaRef, PlaybackEvent, Tracker, TrackedChange
from playbacksync.tracker.events import (ENDED, MARKED_UNWATCHED, MARKED_WATCHED, PAUSED, POSITION,
                                         RESUMED, SEEKED, STARTED)

A = MediaRef(path="/media/a.mkv", title="A", entry_key="1")
B = MediaRef(path="/media/b.mkv", title="B", entry_key="2")
A_AGAIN = MediaRef(path="/media/a.mkv", title="A", entry_key="3")  # same file, later playlist entry


def ev(kind, pos=None, at=0.0, dur=None, reason=None, media=A):
    return PlaybackEvent(kind, media=media, position=pos, duration=dur, reason=reason, at=at)


def start(at=0.0, dur=1000.0, pos=0.0, media=A):
    return ev(STARTED, pos, at, dur, media=media)


P, W, U = "progress", "watched", "unwatched"
SHORT = {PROGRESS: P, WATCHED: W, UNWATCHED: U}

# (id, events, expected [(kind, position seconds, media)] ; media defaults to A)
CASES = [
    ("eof 10 % before the end (below the threshold) is progress, not watched",
     [start(), ev(POSITION, 50, 5), ev(POSITION, 60, 12), ev(SEEKED, 880, 13), ev(POSITION, 896, 29),
      ev(ENDED, None, 30, reason="eof")],
     [(P, 60), (P, 880), (P, 896)]),
    ("eof part-way (--end/--length/--ab-loop at 40 %, truncated file) is progress where it ended",
     [start(), ev(POSITION, 50, 5), ev(POSITION, 390, 12), ev(POSITION, 400, 13),
      ev(ENDED, None, 14, reason="eof")],
     [(P, 390), (P, 400)]),
    ("eof with nothing known but the start is not watched",
     [start(), ev(ENDED, None, 1, reason="eof")],
     []),
    ("passing the threshold while playing marks watched once, no progress in the credits",
     [start(), ev(POSITION, 901, 11), ev(POSITION, 950, 22), ev(POSITION, 990, 33),
      ev(ENDED, 995, 34, reason="quit")],
     [(W, 901)]),
    ("eof after watched by percent adds nothing",
     [start(), ev(POSITION, 950, 11), ev(ENDED, None, 20, reason="eof")],
     [(W, 950)]),
    ("seeking back below the threshold sends progress again but not a second watched",
     [start(), ev(POSITION, 950, 11), ev(SEEKED, 400, 12), ev(POSITION, 950, 30),
      ev(ENDED, 960, 31, reason="quit")],
     [(W, 950), (P, 400)]),
    ("starting the entry again is a new viewing",
     [start(), ev(POSITION, 950, 11), ev(ENDED, None, 12, reason="eof"),
      start(13), ev(POSITION, 960, 24), ev(ENDED, None, 25, reason="eof")],
     [(W, 950), (W, 960)]),
    ("progress at most every interval while playing, not within the start grace",
     [start()] + [ev(POSITION, t, t) for t in range(1, 46)],
     [(P, 30), (P, 40)]),
    ("opening by accident: nothing before the start grace",
     [start(dur=3600), ev(POSITION, 5, 5), ev(PAUSED, 6, 6), ev(ENDED, 7, 7, reason="quit")],
     []),
    ("the start grace is relative for short files",
     [start(dur=10), ev(ENDED, 4.0, 0.1, reason="stop")],
     [(P, 4)]),
    ("pause sends progress at once; the same place is not sent twice",
     [start(), ev(POSITION, 100, 3), ev(PAUSED, 100, 4), ev(RESUMED, 100, 50),
      ev(ENDED, 100.5, 50.5, reason="quit")],
     [(P, 100)]),
    ("pause then stop elsewhere sends both",
     [start(), ev(PAUSED, 100, 4), ev(RESUMED, 100, 5), ev(ENDED, 108, 8, reason="stop")],
     [(P, 100), (P, 108)]),
    ("samples while paused send nothing",
     [start(), ev(PAUSED, 100, 4), ev(POSITION, 100, 20), ev(POSITION, 950, 40)],
     [(P, 100)]),
    ("a settled seek sends progress at once",
     [start(), ev(SEEKED, 500, 1)],
     [(P, 500)]),
    ("a seek past the threshold alone does not mark watched",
     [start(), ev(SEEKED, 950, 1), ev(SEEKED, 100, 2), ev(ENDED, 100.2, 3, reason="stop")],
     [(P, 950), (P, 100)]),
    ("playing on after a seek past the threshold marks watched",
     [start(), ev(SEEKED, 950, 1), ev(POSITION, 951, 5)],
     [(P, 950), (W, 951)]),
    ("a STARTED for a new entry flushes the previous one first",
     [start(), ev(POSITION, 200, 5), start(6, media=B)],
     [(P, 200, A)]),
    ("the same file as a new playlist entry is a new viewing",
     [start(), ev(POSITION, 200, 5), start(6, media=A_AGAIN), ev(ENDED, 300, 7, reason="stop", media=A_AGAIN)],
     [(P, 200, A), (P, 300, A_AGAIN)]),
    ("error end: the position is kept",
     [start(), ev(POSITION, 500, 5), ev(ENDED, None, 6, reason="error")],
     [(P, 500)]),
    ("error end past the threshold (reached by a seek) is not watched",
     [start(), ev(SEEKED, 950, 1), ev(ENDED, 950.5, 2, reason="error")],
     [(P, 950)]),
    ("unknown duration: progress only, eof is not watched",
     [start(dur=None), ev(POSITION, 100, 11), ev(ENDED, 120, 12, reason="eof")],
     [(P, 100), (P, 120)]),
    ("NaN, zero or infinite durations are unknown",
     [start(dur=float("nan")), ev(POSITION, 5000, 11, dur=0.0), ev(POSITION, 6000, 22, dur=math.inf),
      ev(ENDED, None, 23, reason="eof")],
     [(P, 5000), (P, 6000)]),
    ("a duration that arrives later enables watched",
     [start(dur=None), ev(POSITION, 50, 5, dur=100.0), ev(POSITION, 95, 6, dur=100.0)],
     [(W, 95)]),
    ("None and NaN positions keep the last known one",
     [start(), ev(POSITION, 300, 5), ev(POSITION, None, 11), ev(POSITION, float("nan"), 12),
      ev(ENDED, None, 13, reason="quit")],
     [(P, 300)]),
    ("a negative position counts as 0",
     [start(dur=10), ev(POSITION, 4, 1), ev(POSITION, -5, 2), ev(ENDED, None, 3, reason="stop")],
     []),
    ("a position past the end counts as the end",
     [start(dur=100), ev(POSITION, 150, 11)],
     [(W, 100)]),
    ("marked watched by hand: at once, and no automatic watched after",
     [start(), ev(POSITION, 10, 1), ev(MARKED_WATCHED, 12, 2), ev(POSITION, 950, 20),
      ev(ENDED, None, 21, reason="eof")],
     [(W, 12)]),
    ("marked unwatched by hand: the next samples past the threshold don't undo it",
     [start(), ev(POSITION, 950, 11), ev(MARKED_UNWATCHED, 951, 12), ev(POSITION, 960, 23),
      ev(ENDED, None, 30, reason="eof")],
     [(W, 950), (U, 951), (P, 960)]),
    ("manual marks with a media but no viewing still count",
     [ev(MARKED_WATCHED, None, 1, media=B), ev(MARKED_UNWATCHED, None, 2, media=B)],
     [(W, None, B), (U, None, B)]),
    ("a manual mark for another file leaves the viewing alone",
     [start(), ev(MARKED_WATCHED, None, 1, media=B), ev(POSITION, 950, 11)],
     [(W, None, B), (W, 950)]),
    ("a manual mark with nothing playing and no media is dropped",
     [ev(MARKED_WATCHED, None, 1, media=None)],
     []),
    ("events before STARTED and for another entry are ignored",
     [ev(POSITION, 500, 11), ev(ENDED, None, 12, reason="eof"), start(13),
      ev(POSITION, 950, 30, media=B), ev(ENDED, None, 31, reason="eof", media=B)],
     []),
    ("events after ENDED are ignored (keep-open pause at the end)",
     [start(), ev(ENDED, 999.9, 1, reason="eof"), ev(PAUSED, 1000, 2), ev(ENDED, None, 3, reason="quit")],
     [(W, 999.9)]),
    ("events without media apply to the current viewing",
     [start(), ev(PAUSED, 200, 1, media=None), ev(ENDED, None, 2, reason="eof", media=None)],
     [(P, 200)]),
    ("stopping past the threshold counts as watched, also when it started there",
     [start(pos=950), ev(ENDED, 950.5, 1, reason="quit")],
     [(W, 950.5)]),
]


@pytest.mark.parametrize("events, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rules(events, expected):
    tracker = Tracker(progress_interval=10, watched_percent=90, wall_clock=lambda: 1234.5)
    got = [c for e in events for c in tracker.handle(e)]
    want = [(k, None if pos is None else int(round(pos * 1000)), rest[0] if rest else A)
            for k, pos, *rest in expected]
    assert [(SHORT[c.change_type], c.position_ms, c.media) for c in got] == want
    assert all(isinstance(c, TrackedChange) and c.created_at == 1234.5 for c in got)


def test_changes_carry_the_duration_in_ms_and_the_wall_clock():
    clock = iter([100.0, 200.0])
    tracker = Tracker(wall_clock=lambda: next(clock))
    tracker.handle(start(dur=1234.5678))
    (p,) = tracker.handle(ev(PAUSED, 100.25, 1))
    (w,) = tracker.handle(ev(ENDED, 1234.0, 2, reason="eof"))
    assert (p.position_ms, p.duration_ms, p.created_at) == (100250, 1234568, 100.0)
    assert (w.change_type, w.position_ms, w.created_at) == (WATCHED, 1234000, 200.0)


@pytest.mark.parametrize("kwargs", [dict(progress_interval=0), dict(watched_percent=0),
                                    dict(watched_percent=101), dict(progress_interval=-1)])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        Tracker(**kwargs)


@pytest.mark.parametrize("last, want", [
    (997.0, [(WATCHED, 1_000_000)]),      # within a few seconds of the end: the real end
    (995.0, [(WATCHED, 1_000_000)]),
    (994.0, [(PROGRESS, 994_000)]),       # further: the file stopped early
    (400.0, [(PROGRESS, 400_000)]),
])
def test_eof_counts_as_the_end_only_near_the_known_duration(last, want):
    # With watched_percent 100 only the end-of-file rule can mark it watched.
    tracker = Tracker(progress_interval=1000, watched_percent=100, wall_clock=lambda: 0.0)
    tracker.handle(start(dur=1000))
    got = tracker.handle(ev(POSITION, last, 1)) + tracker.handle(ev(ENDED, None, 2, reason="eof"))
    assert [(c.change_type, c.position_ms) for c in got] == want


_eof_steps = st.lists(st.tuples(st.sampled_from([POSITION, POSITION, PAUSED, RESUMED, SEEKED]),
                                st.floats(0, 1000), st.floats(0, 30)), max_size=30)


@settings(max_examples=200, deadline=None)
@given(_eof_steps, st.floats(0, 100), st.floats(1, 100))
def test_eof_is_watched_only_past_the_threshold_or_at_the_end(steps, watched_percent, duration_scale):
    duration = 10.0 * duration_scale
    tracker = Tracker(progress_interval=10, watched_percent=max(watched_percent, 1), wall_clock=lambda: 0.0,
                      start_grace_seconds=0)
    threshold = duration * max(watched_percent, 1) / 100
    out = tracker.handle(start(dur=duration))
    at, last, furthest = 0.0, 0.0, 0.0
    for kind, frac, dt in steps:
        at += dt
        pos = frac / 1000 * duration
        out += tracker.handle(ev(kind, pos, at))
        last, furthest = pos, max(furthest, pos)
    out += tracker.handle(ev(ENDED, None, at + 1, reason="eof"))
    watched = [c for c in out if c.change_type == WATCHED]
    if furthest < threshold and last < duration - 5.0:
        assert not watched
        # The end of file leaves the resume point where playback ended.
        if last > 0:
            assert out and out[-1].change_type == PROGRESS
            assert abs(out[-1].position_ms - last * 1000) <= 1000
    if last >= duration - 5.0 or last >= threshold:
        assert len(watched) == 1


def test_other_thresholds_and_intervals():
    tracker = Tracker(progress_interval=2, watched_percent=50, start_grace_seconds=0)
    got = [c for e in [start(dur=100), ev(POSITION, 1, 1), ev(POSITION, 3, 2.5), ev(POSITION, 60, 4)]
           for c in tracker.handle(e)]
    assert [(c.change_type, c.position_ms) for c in got] == [(PROGRESS, 3000), (WATCHED, 60000)]


_steps = st.lists(st.tuples(st.sampled_from([POSITION, POSITION, POSITION, PAUSED, RESUMED, SEEKED]),
                            st.one_of(st.none(), st.just(math.nan), st.floats(-50, 1200)),
                            st.floats(0, 30)), max_size=40)


@settings(max_examples=150, deadline=None)
@given(_steps, st.sampled_from(["eof", "stop", "quit", "error"]))
def test_invariants_over_any_viewing(steps, reason):
    tracker = Tracker(progress_interval=10, watched_percent=90, wall_clock=lambda: 0.0)
    out = tracker.handle(start(dur=1000))
    at = 0.0
    for kind, pos, dt in steps:
        at += dt
        out += tracker.handle(ev(kind, pos, at))
    out += tracker.handle(ev(ENDED, None, at + 1, reason=reason))
    assert sum(c.change_type == WATCHED for c in out) <= 1
    progress = [c.position_ms for c in out if c.change_type == PROGRESS]
    assert all(0 <= p <= 1_000_000 for p in progress)
    assert all(abs(a - b) >= 1000 for a, b in zip(progress, progress[1:]))
    assert all(p >= 30_000 for p in progress)  # start grace
