"""A fake Jellyfin with one user (token known) and one item, for tests of whole commands."""
from __future__ import annotations

import contextlib

from tests.fakes.jellyfin import JellyfinFake


@contextlib.contextmanager
def jellyfin_with_clip(token: str, path: str = "/srv/media/clip.mkv"):
    """The fake, with ``uid`` (alice, signed in with ``token``) and ``iid`` (a 600 s item at ``path``)."""
    with JellyfinFake(version="10.10.7") as fake:
        uid = fake.add_user("alice", "pass")
        fake.issue_token(uid, token)
        fake.uid, fake.iid = uid, fake.add_item("Clip", path=path, runtime_s=600)
        yield fake
