"""The identification corpus (tests/identify_corpus.py) against the real fakes over HTTP.

Every case resolves through ``Identifier.identify_one``: confirmed (what the worker calls before it writes)
and as a lookup from the index alone;
0 wrong matches, every miss with its reason, every category covered.
"""
import pytest

from playbacksync.config import Config
from playbacksync.identify import Identifier, ItemIndex
from tests.identify_corpus import CATEGORIES, build_world, replaced_cases


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("corpus")
    world = build_world(tmp)
    index = ItemIndex(tmp / "data")
    ident = Identifier(Config(servers=tuple(world.servers)), world.backends, index, miss_wait=20)
    yield world, ident, index
    ident.close()
    index.close()
    world.close()


def _run(ident, cases, confirm=True):
    wrong, unexplained, results = [], [], []
    for case in cases:
        m = ident.identify_one(case.server_id, case.media, wait=20, confirm=confirm)
        results.append((case, m))
        if m.item_id is not None and m.item_id != case.expect:
            wrong.append("%s: matched %s, expected %s (%s)" % (case.name, m.item_id, case.expect, m.reason))
        elif m.item_id is None and (case.expect is not None or not m.reason or case.reason_has not in m.reason):
            unexplained.append("%s: missed (%s), expected %s / %r" % (case.name, m.reason, case.expect,
                                                                      case.reason_has))
    return wrong, unexplained, results


@pytest.mark.parametrize("confirm", [True, False], ids=["confirmed", "lookup"])
def test_corpus_has_no_wrong_match_and_every_miss_says_why(corpus, confirm):
    world, ident, index = corpus
    assert len(world.cases) >= 240
    wrong, unexplained, results = _run(ident, world.cases, confirm)
    assert wrong == []
    assert unexplained == [], "\n".join(unexplained)
    assert {c.category for c in world.cases} >= set(CATEGORIES) - {"replaced"}
    # misses are part of the corpus, not an afterthought
    assert sum(1 for c in world.cases if c.expect is None) >= 60


def test_corpus_replaced_server_never_answers_from_the_old_index(corpus):
    world, ident, index = corpus
    before = replaced_cases(world)
    # the index of plex2 holds the first server's keys
    assert ident.identify_one("plex2", before[0].media, wait=20).item_id == "101"
    world.replace_plex2()
    # what a write uses is confirmed with the server (whatever the identity's age)
    wrong, unexplained, _ = _run(ident, before)
    assert wrong == [] and unexplained == []
    ident.identity_ttl = 0  # a lookup: as after a settings reload or once the identity check is due
    wrong, unexplained, _ = _run(ident, before, confirm=False)
    assert wrong == [] and unexplained == []
    assert len(before) + len(world.cases) >= 250
