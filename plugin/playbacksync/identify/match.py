"""The provider-id rule, as a pure decision over what the index answered, and
``refutation``: whether the server's current item bears an index answer out.

Given the ids the player gave (with the kind of item, when known) and, per id,
the indexed items carrying it, pick the one item they all point at, or say why
not. Rules, each a guard against a wrong item:

- tmdb/tvdb ids count only with a known kind, and only for items of that kind;
  imdb ids (``tt…``) count without one. Ids of the show (``tvshow.tvdb``…)
  never name an episode.
- One id naming exactly one item decides; an id naming several (ambiguous)
  does not decide, but the chosen item must be among them.
- Every id the player gave must agree with the chosen item: same provider,
  same value, same kind, or the item is refused. When the player gave an imdb
  id, the item must carry that imdb id.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

from .index import Candidate, normalize_provider
from .kinds import is_series_id, usable_without_kind
from .paths import path_key

PlayerId = Tuple[str, str]  # (provider, value), normalised


@dataclass(frozen=True)
class IdDecision:
    item_id: Optional[str]
    reason: str  # how it matched, or why not
    refreshable: bool = False  # a miss a refresh could turn into a match


def usable_ids(ids: Sequence[PlayerId], kind: str) -> Tuple[List[PlayerId], List[str]]:
    """The ids that may name an item, and notes on those that may not."""
    usable, notes = [], []
    for provider, value in ids:
        if is_series_id(provider):
            continue  # describes the show; checked nowhere, matched never
        if kind or usable_without_kind(provider, value):
            usable.append((provider, value))
        else:
            notes.append("%s %s not used: the kind of item (movie or episode) is not known" % (provider, value))
    return usable, notes


def contradiction(item_id: str, item_kind: str, known: Dict[str, List[str]], ids: Sequence[PlayerId],
                  kind: str) -> Optional[str]:
    """Why the player's ids and kind refuse this item, or None when they agree."""
    if kind and item_kind in ("movie", "episode") and item_kind != kind:
        return "item %s is a %s, the player plays a %s" % (item_id, item_kind, kind)
    for provider, value in ids:
        if is_series_id(provider):
            continue
        if provider in known and value not in known[provider]:
            return "provider ids disagree: item %s has %s %s, the player says %s" % (
                item_id, provider, "/".join(known[provider]), value)
    if any(p == "imdb" for p, _ in ids) and "imdb" not in known:
        return "item %s has no imdb id to confirm %s" % (
            item_id, " ".join(v for p, v in ids if p == "imdb"))
    return None


def decide(ids: Sequence[PlayerId], kind: str, lookup: Callable[[str, str], List[Candidate]],
           known_ids: Callable[[str], Dict[str, List[str]]], path_candidates: Set[str]) -> IdDecision:
    """The item the player's provider ids name, or None with the reason."""
    usable, notes = usable_ids(ids, kind)
    if not usable:
        return IdDecision(None, "; ".join(notes) or "no provider id to identify it by")
    per_id: Dict[PlayerId, List[Candidate]] = {}
    for pv in usable:
        found = lookup(*pv)
        if kind:  # an id counts only for an item of the same kind
            found = [c for c in found if c.kind == kind
                     or (not c.kind and usable_without_kind(*pv))]
        elif pv[0] == "imdb":
            found = [c for c in found if c.kind in ("movie", "episode", "video", "")]
        if found:
            per_id[pv] = found
    if not per_id:
        why = "no %sitem with %s" % (kind + " " if kind else "", " or ".join("%s %s" % pv for pv in usable))
        return IdDecision(None, "; ".join(notes + [why]), refreshable=True)
    unique = {pv: c[0] for pv, c in per_id.items() if len(c) == 1}
    if not unique:
        return IdDecision(None, "; ".join(notes + ["ambiguous: %d items share %s %s" % (len(c), *pv)
                                                   for pv, c in per_id.items()]))
    chosen = {c.item_id for c in unique.values()}
    if len(chosen) > 1:
        return IdDecision(None, "provider ids disagree: " + ", ".join(
            "%s %s is %s" % (p, v, c.item_id) for (p, v), c in unique.items()))
    item = next(iter(unique.values()))
    for pv, cands in per_id.items():
        if item.item_id not in {c.item_id for c in cands}:
            return IdDecision(None, "provider ids disagree: %s %s is not item %s" % (pv[0], pv[1], item.item_id))
    known = known_ids(item.item_id)
    refused = contradiction(item.item_id, item.kind, known, ids, kind)
    if refused:
        return IdDecision(None, refused)
    if path_candidates and item.item_id not in path_candidates:
        return IdDecision(None, "item %s with the same provider ids is not one with that path" % item.item_id)
    agreeing = [pv for pv in ids if pv[1] in known.get(pv[0], ())]
    return IdDecision(item.item_id, ", ".join("%s %s" % pv for pv in agreeing))


def refutation(item_id: str, item, keys, part_id, ids: Sequence[PlayerId], kind: str,
               need_id: bool) -> Optional[str]:
    """Why the server's current item does not bear the index's answer out, or None."""
    if item is None:
        return "item %s is no longer on the server" % item_id
    if keys:
        held = [path_key(p) for p in item.all_paths()]
        if not any((key.casefold() in {h.casefold() for h in held if h}) if fold else key in held
                   for key, fold in keys):
            return "item %s no longer has that file on the server" % item_id
    if part_id is not None and str(part_id) not in item.part_ids:
        return "item %s no longer has media part %s on the server" % (item_id, part_id)
    known: Dict[str, List[str]] = {}
    for name, value in (item.provider_ids or {}).items():
        pv = normalize_provider(name, value)
        if pv:
            known.setdefault(pv[0], []).append(pv[1])
    refused = contradiction(item_id, item.kind, known, ids, kind)
    if refused is None and need_id and not any(v in known.get(p, ()) for p, v in ids):
        refused = "item %s no longer carries the ids the player gave" % item_id
    return None if refused is None else "on the server now: " + refused

