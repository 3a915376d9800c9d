"""Which item, on each configured server, is playing.

Order, first that answers wins: the server's own stream URL (the item id in
it, confirmed with the server: it exists and is playable), then the file path
through the server's path mappings and the item index, then provider ids
(imdb/tmdb/tvdb, per kind of item: see match.py) in the index. Anything
uncertain (ambiguous, contradicting, unknown) is no match with the reason: a
change is never sent to an item that might be the wrong one. No title or
fuzzy matching.

Two kinds of answer:

- A lookup (``identify``, ``identify_one(confirm=False)``: the ``identify``
  command, the start-of-file prefetch) answers from the index and its cache
  without a request: the index is tied to the identity the server gave
  itself (``ServerId``, ``machineIdentifier``) and an item in it carries its
  kind. That identity is asked again once ``identity_ttl`` seconds passed
  (and at the first lookup of each Identifier: every process, every settings
  reload); another server at the address drops the rows and a full refresh
  starts. An item id from a stream URL that the index does not hold is asked
  of the server once; the answer is cached with the index and goes with it.
- An answer something will be written to (``identify_one``, the default: the
  worker before it sends, a live session) is confirmed with the server (one
  request: the item, with its files and ids), because the index may be
  minutes old or another server may answer at the address now. An answer the
  server does not bear out is a miss ("tried again after the refresh") that
  asks the server's identity and starts a refresh. When the server cannot be
  asked, nothing is answered.

Refresh policy: answers come from the index. A stale index (older than
``max_age``) is refreshed in the background without waiting. A miss that a
refresh could fix (a mapped path, or provider ids, not in the index) starts
one refresh, waits for it at most ``miss_wait`` seconds, and looks again;
refreshes of one server start at most once per ``min_refresh_interval``, so
repeated misses never hammer a server. Pass ``wait=0`` to never block on a
refresh. Refreshes are incremental when they can be (refresh.py).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Set, Tuple

from ..backends.base import PLAYABLE_KINDS
from ..config import Config, ServerConfig
from ..tracker.events import MediaRef
from .index import ItemIndex, _describe, normalize_provider
from .kinds import guess_kind, normalize_kind, usable_without_kind
from .match import contradiction, decide, refutation
from .paths import URL, SplitPath, local_forms, map_to_server
from .refresh import RefreshProgress
from .scheduler import RefreshScheduler
from .urls import item_ref, owners, parse_origin, rest_after_base, safe_url

log = logging.getLogger(__name__)

URL_METHOD, PATH_METHOD, PROVIDER_METHOD = "url", "path", "provider_id"
METHODS = (URL_METHOD, PATH_METHOD, PROVIDER_METHOD)
_PROVIDER_ORDER = ("imdb", "tmdb", "tvdb")
_MISS = "\x00miss"  # marks a reason a refresh could change


@dataclass(frozen=True)
class Match:
    """The item a server holds for what is playing, or None with the reason why not.

    ``final``: the miss is definitive (retrying later cannot help, e.g. the URL
    names a series); False means "waiting to identify".
    """

    item_id: Optional[str]
    method: Optional[str]  # "url" | "path" | "provider_id" | None
    reason: str
    final: bool = False  # True only when trying again later cannot help (a miss's reason says why)

    @property
    def matched(self) -> bool:
        return self.item_id is not None

    def to_json(self) -> dict:
        return {"item_id": self.item_id, "method": self.method, "reason": self.reason}


class _Final(Exception):
    """A definitive miss found while matching."""


@dataclass
class _Media:
    """What is playing, parsed once for all servers."""

    media: MediaRef
    is_http: bool
    owners: List[ServerConfig]
    locals: Tuple[SplitPath, ...]  # the names the file goes by here (symlinks, ..)
    provider_ids: List[Tuple[str, str]]
    kind: str  # movie | episode | "" (as the host said, else from the file name)
    host_kind: str  # as the host said
    confirm: bool = True  # ask the server before answering (something will be written to the item)


class Identifier:
    def __init__(self, config: Config, backends: Mapping[str, object], index: ItemIndex, *,
                 max_age: float = 1800.0, miss_wait: float = 20.0, min_refresh_interval: float = 60.0,
                 page_size: Optional[int] = None, clock=time.time, identity_ttl: float = 60.0,
                 on_progress: Optional[Callable[[RefreshProgress], None]] = None):
        self.config = config
        self.backends = backends
        self.index = index
        self.miss_wait = miss_wait
        self.identity_ttl = identity_ttl
        self._clock = clock
        self._verified_at: Dict[str, float] = {}  # server id -> when its identity was last confirmed
        self.refresher = RefreshScheduler(index, backends, max_age=max_age,
                                          min_refresh_interval=min_refresh_interval, page_size=page_size,
                                          clock=clock, on_progress=on_progress, on_identity=self._confirmed)
        # callback(server_id) after a refresh that succeeded (the worker retries what waits to be identified)
        self.on_refreshed: List = self.refresher.on_refreshed
        # callback(server_id) when another server answers at a server's address (its index was dropped):
        # what was identified from the old one must not be sent to the new one (the worker's queue)
        self.on_replaced: List = index.on_rebound if isinstance(getattr(index, "on_rebound", None), list) else []

    # -- public ----------------------------------------------------------------------

    def identify(self, media: MediaRef, *, wait: Optional[float] = None, confirm: bool = False) -> Dict[str, Match]:
        """One Match per configured server. Never raises.

        ``wait``: how long a miss may wait for a refresh (default ``miss_wait``; 0: never).
        ``confirm``: ask the server whether each answer holds (one request per answer);
        without it the answer is a lookup in the index (see the module doc).
        """
        return self._identify(media, list(self.config.servers), wait, confirm)

    def identify_one(self, server_id: str, media: MediaRef, *, wait: float = 0, confirm: bool = True) -> Match:
        """The Match on one configured server (the worker's lane asks this before it writes: the
        answer is confirmed with the server unless ``confirm=False``). Never raises."""
        servers = [s for s in self.config.servers if s.id == server_id]
        if not servers:
            return Match(None, None, "server %s is not in the settings" % server_id, final=True)
        return self._identify(media, servers, wait, confirm)[server_id]

    def refresh_progress(self) -> Dict[str, RefreshProgress]:
        """How far each running refresh is (for ``status`` and ``sync``)."""
        return self.refresher.progress()

    def _identify(self, media: MediaRef, servers: List[ServerConfig], wait: Optional[float],
                  confirm: bool) -> Dict[str, Match]:
        wait = self.miss_wait if wait is None else wait
        try:
            parsed = self._parse(media, confirm)
        except Exception as e:  # odd input must not break playback
            log.exception("cannot read what is playing")
            return {s.id: Match(None, None, "cannot read what is playing: %s" % _describe(e)) for s in servers}
        results: Dict[str, Match] = {}
        retry: List[ServerConfig] = []
        for server in servers:
            if not server.enabled:
                results[server.id] = Match(None, None, "server is disabled in the settings")
                continue
            match, refreshable = self._safe_match(server, parsed)
            results[server.id] = match
            if match.item_id is None and refreshable:
                if wait > 0:
                    retry.append(server)
                elif self.refresher.safe_start(server.id) is not None:  # for the next look; don't wait
                    results[server.id] = self._safe_match(server, parsed)[0]  # says it runs
            else:
                self.refresher.refresh_if_stale(server.id)
        if retry:
            threads = [(s, self.refresher.safe_start(s.id)) for s in retry]
            deadline = time.monotonic() + wait
            for server, thread in threads:
                if thread is None:
                    continue
                thread.join(max(0.0, deadline - time.monotonic()))
                results[server.id] = self._safe_match(server, parsed)[0]
        return {sid: Match(m.item_id, m.method, _describe(m.reason), m.final) for sid, m in results.items()}

    def refresh(self, server_id: Optional[str] = None, *, wait: bool = True,
                timeout: Optional[float] = None, full: bool = False) -> Dict[str, Optional[str]]:
        """Refresh the index of one or every enabled server now (ignores the interval).

        Returns per server None when it refreshed, else the error (or "still running").
        ``full``: read the whole library even where an incremental refresh would do.
        """
        ids = [server_id] if server_id else [s.id for s in self.config.enabled_servers()]
        return self.refresher.refresh(ids, wait=wait, timeout=timeout, full=full)

    def refresh_stale(self) -> None:
        """Start, in the background, a refresh of each enabled server whose index is stale."""
        for server in self.config.enabled_servers():
            if server.id in self.backends:
                self.refresher.refresh_if_stale(server.id)

    def close(self, timeout: float = 3.0) -> bool:
        """Stop refreshes (they keep the old rows); True if all stopped in time."""
        return self.refresher.close(timeout)

    # -- who answers -----------------------------------------------------------------

    def _check_identity(self, server: ServerConfig, *, force: bool = False) -> Optional[str]:
        """None when the index may answer for this server, else why not. The server is asked
        who it is unless it was within ``identity_ttl`` seconds (``force``: ask now)."""
        backend = self.backends.get(server.id)
        identity_of = getattr(backend, "identity", None)
        if identity_of is None:
            return None  # no connection to check with (and none to send changes through)
        seen = self._verified_at.get(server.id)
        if not force and seen is not None and self.identity_ttl > 0 and time.monotonic() - seen < self.identity_ttl:
            return None
        try:
            identity = identity_of()
        except Exception as e:
            return "cannot check which server answers at %s: %s" % (safe_url(server.url), _describe(e))
        if identity and self.index.bind_identity(server.id, identity):
            self.refresher.start(server.id, force=True, full=True)
        self._confirmed(server.id)
        return None

    def server_answers_as(self, server_id: str, identity: str) -> bool:
        """Someone (the sender's check that a server is back) heard the server give this identity.
        True when it is not the one the index belongs to: the index is dropped (``on_replaced``
        runs) and a full refresh starts."""
        if not identity or self.index.info(server_id).identity in (None, "", identity):
            return False
        if self.index.bind_identity(server_id, identity):
            self.refresher.start(server_id, force=True, full=True)
        self._confirmed(server_id)
        return True

    def _confirmed(self, server_id: str) -> None:
        self._verified_at[server_id] = time.monotonic()

    # -- matching --------------------------------------------------------------------

    def _parse(self, media: MediaRef, confirm: bool = True) -> _Media:
        path = media.path or ""
        is_http = parse_origin(path) is not None
        servers = self.config.enabled_servers()
        ids = []
        for name, value in (media.provider_ids or {}).items():
            pv = normalize_provider(name, value)
            if pv:
                ids.append(pv)
        order = {p: i for i, p in enumerate(_PROVIDER_ORDER)}
        ids.sort(key=lambda pv: (order.get(pv[0], len(order)), pv))
        host_kind = normalize_kind(getattr(media, "kind", ""))
        kind = host_kind
        if not kind and path and any(not usable_without_kind(*pv) for pv in ids):
            kind = guess_kind(path)  # only when an id needs it: guessit is slow to load
        forms = () if is_http else local_forms(path)
        return _Media(media, is_http, owners(path, servers) if is_http else [], forms, ids, kind, host_kind,
                      confirm)

    def _safe_match(self, server: ServerConfig, m: _Media) -> Tuple[Match, bool]:
        try:
            return self._match(server, m)
        except _Final as e:
            return Match(None, None, str(e), final=True), False
        except Exception as e:
            log.exception("identification for %s failed", server.id)
            return Match(None, None, "identification failed: %s" % _describe(e)), False

    def _match(self, server: ServerConfig, m: _Media) -> Tuple[Match, bool]:
        """(match, whether a refresh could turn this miss into a match)."""
        why: List[str] = []
        if not m.confirm:  # a lookup answers from the index only while it is that server's
            unsure = self._check_identity(server)
            if unsure:
                return Match(None, None, unsure), False
        if m.is_http:
            found = self._by_url(server, m, why)
            if found is not None:  # the item, or a refusal (nothing else is tried)
                return found, False
        candidates: Set[str] = set()
        refreshable = False
        found, path_refreshable = self._by_path(server, m, why, candidates)
        if found is not None:
            return found, False
        refreshable |= path_refreshable
        if m.provider_ids:
            found, ids_refreshable = self._by_provider_ids(server, m, why, candidates)
            if found is not None:
                return found, False
            refreshable |= ids_refreshable
        marked = [i for i, text in enumerate(why) if text.endswith(_MISS)]
        if marked:  # say how old the index is, once, after the last "not in the index"
            why = [t[: -len(_MISS)] if t.endswith(_MISS) else t for t in why]
            why[marked[-1]] += " " + self.refresher.state_text(server.id)
        return Match(None, None, "; ".join(why) or "nothing to identify it by"), refreshable

    def _by_url(self, server: ServerConfig, m: _Media, why: List[str]) -> Optional[Match]:
        url = m.media.path
        if server not in m.owners:
            if m.owners:
                why.append("played from the URL of another server (%s)" % ", ".join(s.id for s in m.owners))
            else:
                why.append("URL %s is not of this server (%s)" % (safe_url(url), safe_url(server.url)))
            return None
        rest, query = rest_after_base(url, server)
        ref = item_ref(server.type, rest, query)
        if ref is None:
            why.append("URL %s of this server names no playable %s item" % (safe_url(url), server.type))
            return None
        if ref.kind == "part":  # that part's item, or nothing
            return self._plex_part(server, m, ref.id, why) or Match(None, None, why[-1])
        fresh: Dict[str, List[str]] = {}
        kind = self._url_item_kind(server, m, ref.id, why, fresh)
        if kind is None:  # this server streams that item: it, or nothing (never another by its ids)
            return Match(None, None, why[-1])
        if kind not in PLAYABLE_KINDS and kind != "":
            raise _Final("stream URL %s names item %s, a %s, not a playable item" % (ref.route, ref.id, kind))
        if m.provider_ids or m.host_kind:  # ids (or a kind) the player gave that contradict it refuse it, and
            # nothing else is tried: the server streams that item, the player says it is another
            known = fresh or self.index.provider_ids(server.id, ref.id)
            # (an item whose ids are not known here is held to the kind only)
            refused = contradiction(ref.id, kind, known, m.provider_ids if known else (), m.host_kind)
            if refused:
                return Match(None, None, "stream URL %s: %s" % (ref.route, refused))
        return Match(ref.id, URL_METHOD, "stream URL %s" % ref.route)

    def _url_item_kind(self, server: ServerConfig, m: _Media, item_id: str, why: List[str],
                       fresh: Dict[str, List[str]]) -> Optional[str]:
        """The kind of an item named by a stream URL: a lookup takes it from the index (or a
        check cached with it), else asks the server once and caches the answer with the index;
        a confirmation always asks (``fresh`` gets the item's provider ids then). None, with
        the reason in ``why``, when it has no such item."""
        cached = self.index.kind_of(server.id, item_id)
        get_item = getattr(self.backends.get(server.id), "get_item", None)
        kind = None if m.confirm and get_item is not None else cached  # (no connection: nothing is sent either)
        if kind is not None and get_item is not None and m.provider_ids and self.index.get(server.id, item_id) is None:
            kind = None  # a cached check holds no ids to hold the player's against: ask
        if kind is None:
            if get_item is None:
                why.append("item %s of the stream URL cannot be checked: no connection to this server" % item_id)
                return None
            try:
                item = get_item(item_id)
            except Exception as e:
                why.append("item %s of the stream URL: checking it failed: %s" % (item_id, _describe(e)))
                return None
            kind = None if item is None else (item.kind or "")
            for name, value in ((item.provider_ids or {}) if item is not None else {}).items():
                pv = normalize_provider(name, value)
                if pv:
                    fresh.setdefault(pv[0], []).append(pv[1])
            self.index.remember_check(server.id, item_id, kind)
            kind = "missing" if kind is None else kind
        if kind == "missing":
            why.append("the server has no item %s (named by the stream URL)" % item_id)
            return None
        return kind

    def _plex_part(self, server: ServerConfig, m: _Media, part_id: str, why: List[str]) -> Optional[Match]:
        item_id = self.index.item_for_part(server.id, part_id)
        if item_id and self._confirm(server, m, item_id, why, part_id=part_id)[0]:
            return Match(item_id, URL_METHOD, "stream URL of media part %s (index)" % part_id)
        backend = self.backends.get(server.id)
        lookup = getattr(backend, "item_for_part", None)
        if lookup is None:
            why.append("media part %s is not in the index and cannot be looked up" % part_id)
            return None
        try:
            found = lookup(part_id)
        except Exception as e:
            why.append("media part %s: lookup failed: %s" % (part_id, _describe(e)))
            return None
        item_id = getattr(found, "item_id", found)
        if not item_id:
            why.append("the server has no item with media part %s" % part_id)
            return None
        item_id = str(item_id)
        if not self._confirm(server, m, item_id, why, part_id=part_id)[0]:
            return None
        self.index.remember_part(server.id, part_id, item_id)
        return Match(item_id, URL_METHOD, "stream URL of media part %s" % part_id)

    def _by_path(self, server: ServerConfig, m: _Media, why: List[str],
                 candidates: Set[str]) -> Tuple[Optional[Match], bool]:
        if not m.locals:
            if not m.media.path:
                why.append("no path or URL")
            return None, False
        # A stream URL maps only through a mapping written for it, never as-is.
        mappings = server.path_mappings
        if (m.is_http or m.locals[0].style == URL) and not mappings:
            return None, False
        looked = []  # (shown, via) of each name of the file that maps
        keys = []  # (server path key, fold) of each
        for local in m.locals:
            mapped = map_to_server(local, mappings)
            if mapped is None:
                continue
            shown = mapped.server_path.display()
            via = "" if mapped.mapping is None else " (mapping %s → %s)" % (mapped.mapping.local,
                                                                          mapped.mapping.remote)
            looked.append((shown, via))
            keys.append((mapped.server_path.key(), mapped.server_path.fold))
            candidates.update(self.index.by_path_key(server.id, mapped.server_path.key(),
                                                     fold=mapped.server_path.fold))
        if not looked:
            if not m.is_http:
                why.append("no path mapping covers %s" % m.locals[0].display())
            return None, False
        shown, via = looked[0]
        if len(candidates) == 1:
            item_id = next(iter(candidates))
            refused = contradiction(item_id, self._kind(server.id, item_id),
                                    self.index.provider_ids(server.id, item_id), m.provider_ids, m.host_kind)
            if refused:
                why.append("path %s: %s" % (shown, refused))
                return None, False
            confirmed, refreshable = self._confirm(server, m, item_id, why, keys=keys, ids=m.provider_ids,
                                                   kind=m.host_kind)
            if not confirmed:
                return None, refreshable
            return Match(item_id, PATH_METHOD, "path %s%s" % (shown, via)), False
        if candidates:
            items = sorted(candidates)
            why.append("ambiguous: %d items have path %s (%s)" % (len(items), shown, ", ".join(items[:5])))
            return None, False
        why.append("%s%s not in server index%s" % (shown, via, _MISS))
        return None, True

    def _confirm(self, server: ServerConfig, m: _Media, item_id: str, why: List[str], *, keys=(), ids=(),
                 kind: str = "", part_id: Optional[str] = None, need_id: bool = False) -> Tuple[bool, bool]:
        """Ask the server whether the index's answer still holds: the item exists and has that
        file (or part), and the player's ids and kind agree with it. (confirmed, refreshable)

        The index may be minutes old, or another server may answer at the address now: an
        answer something is written to is given only when the server itself bears it out.
        A lookup takes the index's word (no request).
        """
        if not m.confirm:
            return True, False
        get_item = getattr(self.backends.get(server.id), "get_item", None)
        if get_item is None:
            return True, False  # no connection: nothing is sent through this server either
        try:
            item = get_item(item_id)
        except Exception as e:
            why.append("cannot confirm item %s with the server: %s" % (item_id, _describe(e)))
            return False, False
        refuted = refutation(item_id, item, keys, part_id, ids, kind, need_id)
        if refuted is None:
            return True, False
        why.append(refuted + _MISS)
        # The index was wrong about this item: is another server answering at the address now?
        # (If so its rows are dropped and a full refresh starts, whatever the interval.)
        unsure = self._check_identity(server, force=True)
        if unsure:
            why.append(unsure)
        return False, True

    def _kind(self, server_id: str, item_id: str) -> str:
        kind = self.index.kind_of(server_id, item_id)
        return "" if kind in (None, "missing") else kind

    def _by_provider_ids(self, server: ServerConfig, m: _Media, why: List[str],
                         candidates: Set[str]) -> Tuple[Optional[Match], bool]:
        decision = decide(m.provider_ids, m.kind, lambda p, v: self.index.candidates(server.id, p, v),
                          lambda item_id: self.index.provider_ids(server.id, item_id), candidates)
        if decision.item_id is not None:
            confirmed, refreshable = self._confirm(server, m, decision.item_id, why, ids=m.provider_ids, kind=m.kind,
                                                   need_id=True)
            if not confirmed:
                return None, refreshable
            return Match(decision.item_id, PROVIDER_METHOD, decision.reason), False
        why.append(decision.reason + (_MISS if decision.refreshable else ""))
        return None, decision.refreshable
