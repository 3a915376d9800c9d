"""Live "now playing" sessions, reported as each server's own clients report them.

While a file plays and a server answers, the server sees a playback session:
Jellyfin and Emby get ``Playing`` at the start, ``Progress`` about every
``progress_interval`` seconds and at once on pause, resume and seek, and
``Stopped`` at the end, all with one ``PlaySessionId`` per viewing; Plex gets
``/:/timeline`` reports (playing, paused, stopped) with one session identifier
per viewing. The dashboard shows the player, "continue watching" on other
devices follows along, playback-reporting plugins see the viewing.

The servers apply their own rules to these reports (README, "Who decides
what"): a Jellyfin/Emby start counts a play, a Plex timeline past the server's
threshold counts a view. The durable queue stays the record of what the viewer
did; ``outcome()`` says what the live reports of a viewing already set on a
server, so a queued write can avoid setting it a second time.

Best effort: a report that fails is logged and dropped (the queue sends the
change later). Reports go out from one thread (a loop with a stop event), so a
slow server never holds up the player.

Which reports the server's own client would send is planned in plan.py (pure).
The worker asks ``cover(row)`` before each queued write (``SyncWorker.live_cover``)
and skips, sends without a date, or lets the write count the viewing's play.
Who counts a viewing's play is claimed once per viewing and server, first come:
the live report that counts it (Jellyfin/Emby: the start; Plex: a timeline past
the threshold) or the queue's dated watched mark; the other side then does not
count it again. The app creates one reporter per connection (app.py _start_live).
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from typing import Callable, Deque, Dict, List, Optional, Tuple

from ..backends.base import AuthError, Backend, PermanentError
from ..backends.jellyfin import MIN_RESUME_DURATION_MS
from ..backends.plex import PLEX_WATCHED_SHARE
from ..redact import redact
from ..tracker.events import ENDED, STARTED, MediaRef, PlaybackEvent
from .plan import START, STOPPED, Outcome, Report, Viewing, plan_reports
from .state_file import read_state, write_state

log = logging.getLogger(__name__)

class LiveReporter:
    """Feeds each configured server a live session for what plays.

    ``resolve(server_id, media)`` gives the server's item id, or None while it is
    not known (identification runs on the app's service thread, for the queue).
    """

    RESOLVE_WAIT = 5.0  # seconds a report may wait for its item to be identified

    def __init__(self, backends: Dict[str, Backend], resolve: Callable[[str, MediaRef], Optional[str]], *,
                 progress_interval: float = 10.0, new_session_id: Callable[[], str] = lambda: uuid.uuid4().hex,
                 wall_clock: Callable[[], float] = time.time, held: Callable[[str], bool] = lambda sid: False,
                 state_path: Optional[str] = None):
        self.wall_clock = wall_clock
        # Who counted which viewing survives the process (a later `sync` must not count it again).
        self.state_path = state_path
        self.held = held  # syncing paused (or signed out) for that server: it gets no live reports either
        self.backends = dict(backends)
        self.resolve = resolve
        self.progress_interval = float(progress_interval)
        self.new_session_id = new_session_id
        self._viewing: Optional[Viewing] = None
        self._items: Dict[Tuple[str, str], Optional[str]] = {}  # (server id, session) -> item id
        self._pending: Deque[Tuple] = deque()
        self._outcomes: Dict[Tuple[str, str, str], Outcome] = {}
        self._windows: Dict[str, List[Optional[float]]] = {}  # session -> [started, ended] (wall clock)
        # Who counts a viewing's play on a server, first come: "live" (its counting report) or
        # "row:<id>" (the queued change whose write counts it). The others then do not count it again.
        # Written to disk before the counting request goes out, so a kill never lets it count twice.
        self._claims: Dict[Tuple[str, str], str] = {}
        # Jellyfin/Emby viewings whose start the server answered "not done" (unreachable, 5xx): the
        # start goes out before the viewing's first report the server accepts, or once the server
        # answers again after the viewing ended, unless a queued change counted the play meanwhile.
        self._lost_starts: Dict[Tuple[str, str], dict] = {}
        # When each viewing played changed since the file was written (a start or an end): the
        # reporter's thread writes it before its next report. Every claim is written with the
        # windows before its request, so a kill before that write loses no claim.
        self._windows_changed = False
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._load()

    # -- events in ------------------------------------------------------------
    def handle(self, event: PlaybackEvent) -> None:
        """A host's playback event (the same stream the tracker gets). Cheap: identification and
        sending happen on the reporter's thread, never on the player's."""
        with self._lock:
            if event.kind == STARTED and event.media is not None:
                if self._viewing is not None:  # the next entry starts: the open viewing ends where it was
                    self._queue(plan_reports(self._viewing, PlaybackEvent(ENDED, at=event.at), 0.0))
                    self._windows[self._viewing.session_id][1] = self.wall_clock()
                self._viewing = Viewing(event.media, self.new_session_id(), started_wall=self.wall_clock(),
                                         last_report_at=event.at)
                self._windows[self._viewing.session_id] = [self._viewing.started_wall, None]
                self._forget_old()
                self._windows_changed = True  # saved on the reporter's thread, not the player's
            v = self._viewing
            if v is None or (event.media is not None and event.kind != STARTED
                             and (event.media.path, event.media.entry_key) != (v.media.path, v.media.entry_key)):
                return
            self._queue(plan_reports(v, event, self.progress_interval))
            if event.kind == ENDED:
                self._windows[v.session_id][1] = self.wall_clock()
                self._viewing = None
                self._windows_changed = True
        self._wake.set()

    def _queue(self, reports: List[Report]) -> None:
        v = self._viewing
        duration_ms = None if v.duration is None else int(round(v.duration * 1000))
        for r in reports:
            for sid in self.backends:
                self._pending.append((sid, v.media, v.session_id, r, duration_ms, v.started_wall,
                                      self.wall_clock()))

    def _item(self, sid: str, media: MediaRef, session: str) -> Optional[str]:
        """The server's item for a viewing once identification knows it (asked until it does)."""
        key = (sid, session)
        if self._items.get(key) is None:
            try:
                self._items[key] = self.resolve(sid, media)
            except Exception:
                log.exception("live session: could not resolve the item on %s", sid)
        return self._items.get(key)

    # -- what reached the servers ----------------------------------------------
    def outcome(self, server_id: str, item_id: str, session_id: str) -> Outcome:
        with self._lock:
            return self._outcomes.get((server_id, item_id, session_id), Outcome())

    def outcomes(self, server_id: str, item_id: str) -> List[Outcome]:
        with self._lock:
            return [o for (s, i, _), o in self._outcomes.items() if (s, i) == (server_id, item_id)]

    def cover(self, row, state=None) -> Optional[Tuple[str, str]]:
        """What to do with a queued change (``row``: id, source_id, media_item_id, change_type,
        position_ms, duration_ms, created_at) given what the live reports of its viewing set on that
        server (``state``: the server's state of the item just read, when the worker has one):
        ``("skip", why)``, ``("undated", why)`` (mark played without a date: the viewing's play
        is counted already, the mark must not count another), ``("count", why)`` (Jellyfin/Emby: the
        viewing's play is not counted yet, so this write counts it: the live start never reached the
        server), or None (send as queued).

        Who counts a viewing's play is claimed once, first come, and kept on disk: the live report
        that counts it (Jellyfin/Emby: the start; Plex: a timeline past the threshold) or the queued
        change whose write counts it (a dated watched mark; a position that counts the play: on
        Jellyfin/Emby the viewing's first queued write when the start was lost, on Plex one past the
        threshold). An accepted live stop ran the server's own resume rules at the real end.
        """
        from ..changes import PROGRESS as Q_PROGRESS, WATCHED as Q_WATCHED

        sid, item = row.source_id, str(row.media_item_id)
        plex = self._is_plex(sid)
        with self._lock:
            session = self._session_of(sid, item, row.created_at)
            if session is None:
                return None
            o = self._outcomes.get((sid, item, session))
            if row.change_type == Q_PROGRESS and o is not None:
                if o.stopped:
                    return "skip", "the live session already set the resume point where playback ended"
                if row.position_ms is not None and any(abs(pos - row.position_ms) < 1000
                                                       for state, pos, _ in o.reports if state != START):
                    # Sent again it would be a second report of the same moment (on Plex, past the
                    # threshold, a second counted view: the queue's timeline is not the live session's).
                    return "skip", "the live session already reported this position"
            counting = row.change_type == Q_WATCHED or (
                row.change_type == Q_PROGRESS and (self._plex_counts(row.position_ms, row.duration_ms) if plex
                                                   else not self._short_for_resume_rules(sid, row.duration_ms)))
            if not counting:
                return None
            mine = f"row:{row.id}"
            claim = self._claims.get((sid, session))
            if claim is None:
                self._claims[(sid, session)] = claim = mine
                self._save()  # on disk before the write goes out
        if claim == mine:
            if row.change_type == Q_PROGRESS and not plex:
                return "count", "the live start of this viewing never reached the server: this write counts its play"
            return None
        if row.change_type == Q_PROGRESS:
            if plex:
                return "skip", "this viewing's view is counted already: a timeline past the threshold would count another"
            return None
        if plex:
            return "skip", "this viewing's view is counted already (Plex counted it past its watched threshold)"
        if claim == "live" and o is not None and o.stopped:
            return "skip", "the live session counted this play and the server's rules decided played"
        if (claim == "live" and o is not None and o.stop_unanswered_ms is not None and state is not None
                and (state.played or abs(state.position_ms - o.stop_unanswered_ms) < 1000)):
            return "skip", "the live session's end landed (its answer was lost): the server's rules decided"
        return "undated", "this viewing's play is counted already"

    def reported(self, row) -> bool:
        """A live session of this viewing reported to that server: the server's recent changes to the
        item are this viewing's own, not another device's (the worker skips its conflict check)."""
        with self._lock:
            return self._session_of(row.source_id, str(row.media_item_id), row.created_at) is not None

    # -- what survives the process ------------------------------------------------
    def _save(self) -> None:
        """Write the windows, claims and outcomes (state_file.py). Caller holds the lock."""
        self._windows_changed = False
        if self.state_path:
            write_state(self.state_path, self._windows, self._claims, self._outcomes)

    def _save_windows(self) -> None:
        with self._lock:
            if self._windows_changed:
                self._save()

    def _load(self) -> None:
        if self.state_path:
            self._windows, self._claims, self._outcomes, items = read_state(self.state_path, self.wall_clock())
            self._items.update(items)

    KEEP_VIEWINGS = 256  # what live reports set is remembered for this many viewings

    def _forget_old(self) -> None:
        while len(self._windows) > self.KEEP_VIEWINGS:
            old = next(iter(self._windows))
            del self._windows[old]
            for table in (self._claims, self._items, self._lost_starts):
                for key in [k for k in table if k[1] == old]:
                    del table[key]
            for key in [k for k in self._outcomes if k[2] == old]:
                del self._outcomes[key]

    def _session_of(self, sid: str, item: str, created_at: float) -> Optional[str]:
        """The viewing a queued change was made in (the player plays one thing at a time)."""
        for session, (started, ended) in reversed(list(self._windows.items())):
            if started - 1.0 <= created_at <= (ended if ended is not None else float("inf")) + 1.0:
                known = self._items.get((sid, session))
                if known is None or known == item:
                    return session
        return None

    def _is_plex(self, sid: str) -> bool:
        return getattr(getattr(self.backends.get(sid), "server", None), "type", "") == "plex"

    def _short_for_resume_rules(self, sid: str, duration_ms: Optional[int]) -> bool:
        """Jellyfin/Emby mark an item shorter than MinResumeDurationSeconds (300 s by default), or of
        unknown length, *played* on any progress report between 5 % and 90 % (UpdatePlayState). A
        partial viewing of a short clip must not become a watched one, so such viewings get no live
        session there; the queue sets their resume point directly."""
        return not self._is_plex(sid) and (not duration_ms or duration_ms < MIN_RESUME_DURATION_MS)

    @staticmethod
    def _plex_counts(position_ms: Optional[int], duration_ms: Optional[int]) -> bool:
        """Plex counts a view for a timeline past its threshold (90 % by default)."""
        return bool(duration_ms) and position_ms is not None and position_ms >= PLEX_WATCHED_SHARE * duration_ms

    def _counts_play(self, sid: str, report: Report, duration_ms: Optional[int]) -> bool:
        """Would the server count a play for this report? Jellyfin/Emby at the start; Plex past its
        threshold (90 % by default)."""
        if self._is_plex(sid):
            return self._plex_counts(report.position_ms, duration_ms)
        return report.state == START

    # -- sending ---------------------------------------------------------------
    def flush(self) -> None:
        """Send every queued report now, in order (the thread does this; tests may call it).

        A report whose item is not identified yet waits (at most ``RESOLVE_WAIT`` seconds, so the
        start of a viewing is not lost to a slow first identification), then is dropped. A lost
        Jellyfin/Emby start is sent again before the viewing's next report, or (the viewing over)
        with its last report once the server answers again: see ``_lost_starts``."""
        self._save_windows()
        while True:
            with self._lock:
                if not self._pending:
                    break
                sid, media, session, report, duration_ms, started_wall, made_wall = self._pending[0]
            item = self._item(sid, media, session)
            if item is None and self.wall_clock() - made_wall < self.RESOLVE_WAIT:
                return  # asked again at the next wake-up
            with self._lock:
                self._pending.popleft()
            if item is None or self.held(sid) or self._short_for_resume_rules(sid, duration_ms):
                continue
            key = (sid, session)
            lost = self._lost_starts.get(key)
            if lost is not None and report.state != START:
                lost["last"] = report  # what to send after the start when the server answers again
                if not self._send(sid, item, session, Report(START, lost["start_ms"], False), duration_ms,
                                  started_wall, made_wall):
                    continue  # still not answering: the start goes first, when it answers again
            delivered = self._send(sid, item, session, report, duration_ms, started_wall, made_wall)
            if not delivered and report.state == START and not self._is_plex(sid):
                with self._lock:
                    self._lost_starts[key] = {"item": item, "start_ms": report.position_ms, "last": None,
                                              "duration_ms": duration_ms, "started_wall": started_wall,
                                              "tries": 0, "next_try": 0.0}
        self._retry_lost_starts()

    def _retry_lost_starts(self) -> None:
        """A viewing that ended while its start (and everything after it) was lost: once the server
        answers again its play is counted as its own client's start would have, followed by the
        viewing's last report (normally the stop, where the resume rules run at the real end)."""
        now = self.wall_clock()
        with self._lock:
            waiting = [(k, v) for k, v in self._lost_starts.items() if v["last"] is not None
                       and v["next_try"] <= now and self._windows.get(k[1], [0, None])[1] is not None]
        for (sid, session), lost in waiting:
            if self.held(sid):
                continue
            args = (lost["duration_ms"], lost["started_wall"], now)
            if not self._send(sid, lost["item"], session, Report(START, lost["start_ms"], False), *args):
                lost["tries"] += 1  # the server still does not answer: at the next wake-up, then 1, 2, 4 … 60 s
                lost["next_try"] = now + (0.0 if lost["tries"] < 2 else min(60.0, 2.0 ** (lost["tries"] - 2)))
                continue
            self._send(sid, lost["item"], session, lost["last"], *args)

    def _send(self, sid: str, item: str, session: str, report: Report, duration_ms: Optional[int],
              started_wall: float, made_wall: float) -> bool:
        """One report. False when the server answered "not done" or could not be reached (nothing
        landed); True when it accepted it, or it is not needed (a queued change counted the play),
        or (a counting report) its answer never came: it may have landed, so its claim stays and it
        is not sent again (the play is never counted twice)."""
        key = (sid, session)
        counting = self._counts_play(sid, report, duration_ms)
        took = False  # this report takes the claim (an earlier one of the viewing may hold it already)
        if counting:
            with self._lock:
                claim = self._claims.get(key)
                if claim is None:
                    self._claims[key] = claim = "live"
                    took = True
                    self._save()  # on disk before the request: a kill mid-request never counts it twice
                if claim != "live":  # a queued change counted this play already
                    self._lost_starts.pop(key, None)
            if claim != "live":
                if report.state != STOPPED:
                    return True
                report = Report(STOPPED, 0, report.paused)  # Plex: end the session, count nothing
        backend = self.backends[sid]
        try:
            backend.report_playback(report.state, item, report.position_ms, duration_ms=duration_ms,
                                    paused=report.paused, play_session_id=session)
        except Exception as e:  # best effort: the queue stays the record
            log.info("live session on %s: %s report not delivered: %s", sid, report.state, redact(e))
            not_done = (isinstance(e, (AuthError, PermanentError)) or getattr(e, "answered", False)
                        or getattr(e, "not_sent", False))
            if took:
                with self._lock:
                    if not not_done:
                        self._lost_starts.pop(key, None)  # may have landed: counted, never sent again
                    elif self._claims.get(key) == "live":
                        # Not counted: a queued change or a later try may count it. (A Plex stop past the
                        # threshold that fails leaves the claim of the timeline that counted the view.)
                        del self._claims[key]
                        self._save()
            if report.state == STOPPED and not not_done:
                with self._lock:
                    o = self._outcomes.setdefault((sid, item, session), Outcome(started_wall=started_wall))
                    o.stop_unanswered_ms = report.position_ms
            return not not_done and counting
        with self._lock:
            if report.state == START:
                self._lost_starts.pop(key, None)
            elif self._lost_starts.get(key, {}).get("last") is report:
                del self._lost_starts[key]
            o = self._outcomes.setdefault((sid, item, session), Outcome(started_wall=started_wall))
            o.reports.append((report.state, report.position_ms, report.paused))
            o.duration_ms = duration_ms or o.duration_ms
            if report.state == STOPPED:
                o.ended_wall = made_wall
            o.started |= report.state == START
            o.stopped |= report.state == STOPPED
            o.furthest_ms = max(o.furthest_ms, report.position_ms)
            self._save()
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="playback-sync-live", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            try:
                self.flush()
            except Exception:
                log.exception("live session reporting failed")

    def stop(self, deadline: float = 5.0) -> None:
        """Send what is queued (within ``deadline`` seconds), then end the thread."""
        end = time.monotonic() + deadline
        while self._pending and time.monotonic() < end:
            self._wake.set()
            time.sleep(0.01)
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(max(0.0, end - time.monotonic()))
        self._save_windows()  # an end that left no report to send
