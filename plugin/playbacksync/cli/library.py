"""A server's first item listing (a large library can take minutes), read in the foreground with
progress, so `sync` and `identify` say what they wait for instead of sitting silent."""
from __future__ import annotations

from typing import Iterable

from ..redact import redact
from .progress import Progress


class _Counting:
    """A backend whose item listing reports each item read."""

    def __init__(self, backend, on_item):
        self._backend, self._on_item = backend, on_item

    def iter_items(self, page_size: int = 200):
        n = 0
        for item in self._backend.iter_items(page_size=page_size):
            n += 1
            self._on_item(n)
            yield item


def read_new_libraries(index, backends, server_ids: Iterable[str], *, say_errors: bool = True) -> None:
    """Refresh the item index of each server never listed before, with a progress count."""
    for sid in server_ids:
        backend = backends.get(sid)
        if backend is None or index.info(sid).refreshed_at is not None:
            continue
        bar = Progress(f"reading the library of {sid}", None)
        try:
            n = index.refresh(sid, _Counting(backend, bar.update))
        except Exception as exc:  # said by status/sync in their own words; identification retries later
            bar.close()
            if say_errors:
                print(f"{sid}: could not read the library: {redact(str(exc))}")
            continue
        bar.update(n)
        bar.close()
