"""What the fake Plex server knows: sections, items, parts, Guids, and per-user play state.

Kept apart from the HTTP layer so the behaviour (how timeline, scrobble and
unscrobble change the state) reads on its own.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

# The rules this fake models, and where they come from. Plex's server is closed source; its API
# document (/work/shared/specs/plex, "/:/timeline", "/:/scrobble") says what the routes take, and
# python-plexapi's use of them (Playable.markPlayed -> /:/scrobble, updateTimeline -> /:/timeline
# with state/time/duration) says how clients drive them. From those:
#  - /:/scrobble counts one view (viewCount + 1), clears viewOffset, stamps lastViewedAt.
#  - /:/unscrobble clears viewCount, viewOffset and lastViewedAt.
#  - /:/timeline keeps time as viewOffset; past the server's "video played threshold" (a server
#    setting, 90 % by default) it counts the view instead, as a scrobble.
#  - NOT CONFIRMED (modelled because a client must not depend on the opposite): one playback
#    session (X-Plex-Session-Identifier, else the client identifier, per item) counts at most one
#    view however many timelines past the threshold it sends; a "stopped" timeline ends the session.
#    Checked: the API document (/:/timeline: X-Plex-Session-Identifier "unique per client playback
#    session", used when a client plays several items at once) and Plex's older "Media Feedback"
#    API notes say what identifies a session, not how many views one counts; python-plexapi's
#    Video.updateTimeline / updateProgress (pkkid/python-plexapi, plexapi/video.py) send no session
#    identifier at all; no client source or issue thread found states the rule.
#  - NOT CONFIRMED: offline=1 with updated=<epoch> stamps lastViewedAt with that time. Checked: the
#    API document says only that sync clients send them when replaying timelines after an offline
#    spell ("updated": "the time at which the playback state was last updated"); python-plexapi
#    never sends them; no production client source using them was found. A scrobble stamps the
#    server's own time (what third-party sync tools report too).
WATCHED_THRESHOLD = 0.9
TYPE_NUMBERS = {"movie": 1, "show": 2, "season": 3, "episode": 4}


@dataclass
class Section:
    key: str
    title: str
    type: str  # movie | show
    uuid: str
    location: str


@dataclass
class Item:
    rating_key: str
    section: str
    type: str  # movie | show | episode
    title: str
    duration: int = 0  # ms; 0 for shows
    parts: List[Tuple[int, str]] = field(default_factory=list)  # (part id, file)
    guids: List[str] = field(default_factory=list)
    show_title: str = ""
    added_at: int = 1_600_000_000
    versions: List[List[Tuple[int, str]]] = field(default_factory=list)  # more Media (other versions)
    updated_at: int = 0  # when the server last changed the item; 0: when added

    def updated(self) -> int:
        return self.updated_at or self.added_at


@dataclass
class UserState:
    view_offset: int = 0
    view_count: int = 0
    last_viewed_at: Optional[int] = None


class PlexLibrary:
    """Seeded library plus per-token user state. Thread-safe: the server answers from threads."""

    def __init__(self, clock: Callable[[], float] = time.time,
                 watched_threshold: float = WATCHED_THRESHOLD):
        self.clock = clock
        self.watched_threshold = watched_threshold
        self.sections: Dict[str, Section] = {}
        self.items: Dict[str, Item] = {}
        self.users: Dict[str, str] = {}  # token -> user name
        self._state: Dict[Tuple[str, str], UserState] = {}
        self._counted: set = set()  # (token, session, ratingKey): sessions that already counted a view
        self.timelines: List[dict] = []  # every timeline report, for assertions
        # What the dashboard (/status/sessions) shows: (token, session, ratingKey) -> last state
        self.now_playing: Dict[Tuple[str, str, str], str] = {}
        self._lock = threading.RLock()

    # --- seeding -------------------------------------------------------------
    def add_user(self, token: str, name: str) -> None:
        self.users[token] = name

    def add_section(self, key: str, title: str, type_: str, location: str) -> Section:
        section = Section(key, title, type_, f"00000000-0000-4000-8000-{int(key):012d}", location)
        self.sections[key] = section
        return section

    def add_item(self, item: Item) -> Item:
        self.items[item.rating_key] = item
        return item

    def seed(self, movies: int = 3, episodes: int = 4) -> None:
        """A movie library and a TV library, with files and provider ids."""
        self.add_section("1", "Movies", "movie", "/srv/media/Movies")
        self.add_section("2", "TV Shows", "show", "/srv/media/TV")
        part = 1000
        for n in range(1, movies + 1):
            part += 1
            self.add_item(Item(
                rating_key=str(100 + n), section="1", type="movie", title=f"Movie {n}",
                duration=600_000 + n * 60_000,
                parts=[(part, f"/srv/media/Movies/Movie {n} ({2000 + n})/Movie {n}.mkv")],
                guids=[f"imdb://tt{1000000 + n:07d}", f"tmdb://{500 + n}"],
            ))
        self.add_item(Item(rating_key="200", section="2", type="show", title="Show",
                           guids=["tvdb://70000"]))
        for n in range(1, episodes + 1):
            part += 1
            self.add_item(Item(
                rating_key=str(200 + n), section="2", type="episode", title=f"Episode {n}",
                duration=1_200_000, show_title="Show",
                parts=[(part, f"/srv/media/TV/Show/Season 01/Show - S01E{n:02d}.mkv")],
                guids=[f"tvdb://{71000 + n}", f"imdb://tt{2000000 + n:07d}"],
            ))

    # --- per-user state ------------------------------------------------------
    def state(self, token: str, rating_key: str) -> UserState:
        with self._lock:
            return self._state.setdefault((token, rating_key), UserState())

    def scrobble(self, token: str, rating_key: str) -> None:
        with self._lock:
            st = self.state(token, rating_key)
            st.view_count += 1
            st.view_offset = 0
            st.last_viewed_at = int(self.clock())

    def unscrobble(self, token: str, rating_key: str) -> None:
        with self._lock:
            st = self.state(token, rating_key)
            st.view_count = 0
            st.view_offset = 0
            st.last_viewed_at = None

    def timeline(self, token: str, rating_key: str, state: str, time_ms: Optional[int],
                 duration_ms: Optional[int], session: str = "", updated: Optional[int] = None) -> None:
        """Progress report: keeps the offset; past the threshold it counts a view (once per session)."""
        item = self.items[rating_key]
        duration = duration_ms or item.duration
        key = (token, session, rating_key)
        with self._lock:
            self.timelines.append({"token": token, "key": rating_key, "state": state, "time": time_ms,
                                   "session": session, "updated": updated})
            st = self.state(token, rating_key)
            if time_ms is not None and state != "buffering":
                if duration and time_ms >= duration * self.watched_threshold:
                    if key not in self._counted:
                        self.scrobble(token, rating_key)
                        if updated:
                            st.last_viewed_at = int(updated)
                    self._counted.add(key)
                else:
                    st.view_offset = max(0, int(time_ms))
                    st.last_viewed_at = int(updated or self.clock())
            if state == "stopped":
                self._counted.discard(key)
                self.now_playing.pop(key, None)
            elif state in ("playing", "paused", "buffering"):
                self.now_playing[key] = state

    def set_state(self, token: str, rating_key: str, *, view_offset: int = 0, view_count: int = 0,
                  last_viewed_at: Optional[int] = None) -> None:
        """Test hook: what another client (say, a TV) did on the server."""
        with self._lock:
            self._state[(token, rating_key)] = UserState(view_offset, view_count, last_viewed_at)

    # --- views as Plex's JSON --------------------------------------------------
    def section_json(self, section: Section) -> dict:
        return {
            "key": section.key, "title": section.title, "type": section.type,
            "uuid": section.uuid, "language": "en-US", "agent": "tv.plex.agents." + section.type,
            "scanner": "Plex Movie" if section.type == "movie" else "Plex TV Series",
            "allowSync": True, "filters": True, "refreshing": False,
            "Location": [{"id": int(section.key), "path": section.location}],
        }

    def item_json(self, token: str, item: Item, *, guids: bool = True) -> dict:
        data = {
            "ratingKey": item.rating_key, "key": f"/library/metadata/{item.rating_key}",
            "type": item.type, "title": item.title, "addedAt": item.added_at,
            "librarySectionID": int(item.section),
            "guid": f"plex://{item.type}/{int(item.rating_key):024x}",
        }
        if item.duration:
            data["duration"] = item.duration
        if item.show_title:
            data["grandparentTitle"] = item.show_title
            data["grandparentRatingKey"] = "200"
        if guids and item.guids:
            data["Guid"] = [{"id": g} for g in item.guids]
        data["updatedAt"] = item.updated()
        if item.parts:
            # One Media per version, one Part per file of it (cd1, cd2).
            data["Media"] = [{
                "id": parts[0][0] + 5000, "duration": item.duration, "container": "mkv",
                "Part": [{"id": pid, "key": f"/library/parts/{pid}/{item.added_at}/file.mkv",
                          "file": path, "duration": item.duration, "container": "mkv"}
                         for pid, path in parts],
            } for parts in [item.parts] + item.versions]
        st = self.state(token, item.rating_key)
        # Plex leaves out the attributes it has no value for.
        if st.view_offset:
            data["viewOffset"] = st.view_offset
        if st.view_count:
            data["viewCount"] = st.view_count
        if st.last_viewed_at is not None:
            data["lastViewedAt"] = st.last_viewed_at
        return data
