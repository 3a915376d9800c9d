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
from typing import Callable, Dict, List, Mapping, Optional, Set, Tuple

from ..config import Config, ServerConfig
from ..tracker.events import MediaRef
from .answers import MISS_MARK, _PROVIDER_ORDER, Match, FinalMiss, ParsedMedia
from .index import ItemIndex, _describe, normalize_provider
from .kinds import guess_kind, normalize_kind, usable_without_kind
from .paths import local_forms
from .refresh import RefreshProgress
from .methods import ByMethod
from .scheduler import RefreshScheduler
from .urls import owners, parse_origin, safe_url

log = logging.getLogger(__name__)

class Identifier(ByMethod):
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

    def _parse(self, media: MediaRef, confirm: bool = True) -> ParsedMedia:
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
        return ParsedMedia(media, is_http, owners(path, servers) if is_http else [], forms, ids, kind, host_kind,
                      confirm)

    def _safe_match(self, server: ServerConfig, m: ParsedMedia) -> Tuple[Match, bool]:
        try:
            return self._match(server, m)
        except FinalMiss as e:
            return Match(None, None, str(e), final=True), False
        except Exception as e:
            log.exception("identification for %s failed", server.id)
            return Match(None, None, "identification failed: %s" % _describe(e)), False

    def _match(self, server: ServerConfig, m: ParsedMedia) -> Tuple[Match, bool]:
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
        marked = [i for i, text in enumerate(why) if text.endswith(MISS_MARK)]
        if marked:  # say how old the index is, once, after the last "not in the index"
            why = [t[: -len(MISS_MARK)] if t.endswith(MISS_MARK) else t for t in why]
            why[marked[-1]] += " " + self.refresher.state_text(server.id)
        return Match(None, None, "; ".join(why) or "nothing to identify it by"), refreshable
