"""Hypothesis state machine: however the library changes between refreshes (added,
removed, renamed, re-tagged items, a new server behind the address), identification
by path and by imdb id never names an item that now holds another file or id.

Against the Jellyfin fake over loopback HTTP, with real incremental and full refreshes.
An answer may be stale (an item deleted since the last refresh: the send then fails as
"not found"), or a miss; it may never be another existing item.
"""
import itertools
import time
import uuid

from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from playbacksync.backends.jellyfin import JellyfinBackend
from playbacksync.config import Config, PathMapping, ServerConfig
from playbacksync.identify import Identifier, ItemIndex
from playbacksync.tracker.events import MediaRef
from tests.fakes.jellyfin import JellyfinFake

PATHS = ["/srv/media/Movies/F%d.mkv" % n for n in range(6)]
IMDB = ["tt%07d" % n for n in range(6)]


class LibraryChanges(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        import tempfile

        self.tmp = tempfile.TemporaryDirectory()
        self.fake = JellyfinFake().start()
        uid = self.fake.add_user("alice", "pass")
        self.server = ServerConfig(id="jf", type="jellyfin", url=self.fake.url, token=self.fake.issue_token(uid),
                                   user_id=uid, path_mappings=(PathMapping("/mnt/media", "/srv/media"),))
        self.backend = JellyfinBackend(self.server)
        self.index = ItemIndex(self.tmp.name)
        self.ident = Identifier(Config(servers=(self.server,)), {"jf": self.backend}, self.index, miss_wait=0)
        self.names = itertools.count()

    def teardown(self):
        self.ident.close()
        self.index.close()
        self.backend.close()
        self.fake.stop()
        self.tmp.cleanup()

    def _free(self, values, attr):
        taken = {getattr(i, attr) if attr == "path" else i.provider_ids.get("Imdb") for i in self.fake.items.values()}
        return [v for v in values if v not in taken]

    @rule(data=st.data())
    def add(self, data):
        free = self._free(PATHS, "path")
        if free:
            imdb = data.draw(st.sampled_from(self._free(IMDB, "imdb") or [None]))
            self.fake.add_item("I%d" % next(self.names), data.draw(st.sampled_from(free)),
                               {"Imdb": imdb} if imdb else {})

    @precondition(lambda self: self.fake.items)
    @rule(data=st.data())
    def remove(self, data):
        self.fake.remove_item(data.draw(st.sampled_from(sorted(self.fake.items))))

    @precondition(lambda self: self.fake.items)
    @rule(data=st.data())
    def rename(self, data):
        free = self._free(PATHS, "path")
        if free:
            self.fake.update_item(data.draw(st.sampled_from(sorted(self.fake.items))), path=data.draw(st.sampled_from(free)))

    @precondition(lambda self: self.fake.items)
    @rule(data=st.data())
    def retag(self, data):
        iid = data.draw(st.sampled_from(sorted(self.fake.items)))
        imdb = data.draw(st.sampled_from(self._free(IMDB, "imdb") or [None]))
        self.fake.update_item(iid, provider_ids={"Imdb": imdb} if imdb else {})

    @rule()
    def another_server(self):
        """A reinstall behind the same address: new identity, every item a new id."""
        self.fake.server_id = uuid.uuid4().hex
        items = list(self.fake.items.values())
        self.fake.items.clear()
        for item in items:
            self.fake.add_item(item.name, item.path, item.provider_ids)

    @rule(full=st.booleans())
    def refresh(self, full):
        assert self.ident.refresh(full=full, timeout=30) == {"jf": None}
        # just refreshed, nothing changed since: a lookup (the index alone, no request) is right too
        self._check(confirm=False)

    @invariant()
    def never_another_existing_item(self):
        self._check(confirm=True)  # what a change is written to: whatever changed since the refresh

    def _check(self, confirm):
        now = {iid: (i.path, i.provider_ids.get("Imdb")) for iid, i in self.fake.items.items()}
        for path, imdb in zip(PATHS, IMDB):
            for media, held in ((MediaRef(path=path.replace("/srv/media", "/mnt/media")), lambda v: v[0] == path),
                                (MediaRef(path="/elsewhere/x.mkv", provider_ids={"imdb": imdb}),
                                 lambda v: v[1] == imdb)):
                match = self.ident.identify_one("jf", media, wait=0, confirm=confirm)
                if match.item_id is not None and match.item_id in now:
                    assert held(now[match.item_id]), (media, match, now[match.item_id])
                assert match.item_id is not None or match.reason


LibraryChanges.TestCase.settings = settings(max_examples=40, stateful_step_count=12, deadline=None)
TestLibraryChanges = LibraryChanges.TestCase
