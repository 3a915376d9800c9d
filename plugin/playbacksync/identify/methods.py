"""The ways identification finds a server's item, each refusing what it cannot be sure of:
the server's own stream URL, the file path through the mappings and the index, provider ids
(per kind of item). Mixed into ``Identifier`` (identifier.py), whose ``index``, ``backends``,
``refresher`` and identity check they use; the order they are tried in is decided there.
"""
from __future__ import annotations

import logging
from typing import Dict, List, Optional, Set, Tuple

from ..backends.base import PLAYABLE_KINDS
from ..config import ServerConfig
from .answers import MISS_MARK, PATH_METHOD, PROVIDER_METHOD, URL_METHOD, Match, FinalMiss, ParsedMedia
from .index import _describe, normalize_provider
from .match import contradiction, decide, refutation
from .paths import URL, map_to_server
from .urls import item_ref, rest_after_base, safe_url

log = logging.getLogger(__name__)


class ByMethod:
    def _by_url(self, server: ServerConfig, m: ParsedMedia, why: List[str]) -> Optional[Match]:
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
            raise FinalMiss("stream URL %s names item %s, a %s, not a playable item" % (ref.route, ref.id, kind))
        if m.provider_ids or m.host_kind:  # ids (or a kind) the player gave that contradict it refuse it, and
            # nothing else is tried: the server streams that item, the player says it is another
            known = fresh or self.index.provider_ids(server.id, ref.id)
            # (an item whose ids are not known here is held to the kind only)
            refused = contradiction(ref.id, kind, known, m.provider_ids if known else (), m.host_kind)
            if refused:
                return Match(None, None, "stream URL %s: %s" % (ref.route, refused))
        return Match(ref.id, URL_METHOD, "stream URL %s" % ref.route)

    def _url_item_kind(self, server: ServerConfig, m: ParsedMedia, item_id: str, why: List[str],
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

    def _plex_part(self, server: ServerConfig, m: ParsedMedia, part_id: str, why: List[str]) -> Optional[Match]:
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

    def _by_path(self, server: ServerConfig, m: ParsedMedia, why: List[str],
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
        why.append("%s%s not in server index%s" % (shown, via, MISS_MARK))
        return None, True

    def _confirm(self, server: ServerConfig, m: ParsedMedia, item_id: str, why: List[str], *, keys=(), ids=(),
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
        why.append(refuted + MISS_MARK)
        # The index was wrong about this item: is another server answering at the address now?
        # (If so its rows are dropped and a full refresh starts, whatever the interval.)
        unsure = self._check_identity(server, force=True)
        if unsure:
            why.append(unsure)
        return False, True

    def _kind(self, server_id: str, item_id: str) -> str:
        kind = self.index.kind_of(server_id, item_id)
        return "" if kind in (None, "missing") else kind

    def _by_provider_ids(self, server: ServerConfig, m: ParsedMedia, why: List[str],
                         candidates: Set[str]) -> Tuple[Optional[Match], bool]:
        decision = decide(m.provider_ids, m.kind, lambda p, v: self.index.candidates(server.id, p, v),
                          lambda item_id: self.index.provider_ids(server.id, item_id), candidates)
        if decision.item_id is not None:
            confirmed, refreshable = self._confirm(server, m, decision.item_id, why, ids=m.provider_ids, kind=m.kind,
                                                   need_id=True)
            if not confirmed:
                return None, refreshable
            return Match(decision.item_id, PROVIDER_METHOD, decision.reason), False
        why.append(decision.reason + (MISS_MARK if decision.refreshable else ""))
        return None, decision.refreshable
