"""Progress on long work: a bar on a terminal (rich, imported only then), plain lines otherwise."""
from __future__ import annotations

import sys
import time
from typing import Optional


class Progress:
    """``update(done)`` of ``total`` (None: not known, a count); ``close()`` ends the bar.
    Quiet for known totals below ``least``."""

    PLAIN_EVERY = 2.0  # seconds between plain progress lines

    def __init__(self, label: str, total: Optional[int], *, stream=None, least: int = 2):
        self.label = label
        self.total = None if total is None else max(0, int(total))
        self.stream = stream or sys.stderr  # stdout stays for results (and --json)
        self.done = 0
        self._bar = None
        self._task = None
        self._last_line = 0.0
        self._printed = -1  # the count on the last plain line
        self._quiet = self.total is not None and self.total < least
        if self._quiet:
            return
        if _is_terminal(self.stream):
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeRemainingColumn

            self._bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeRemainingColumn(), console=Console(file=self.stream), transient=False)
            self._bar.start()
            self._task = self._bar.add_task(label, total=self.total)
        else:
            self._line(force=True)

    def update(self, done: int, total: Optional[int] = None) -> None:
        if total is not None:
            self.total = max(self.total or 0, int(total))
        done = max(0, int(done) if self.total is None else min(int(done), self.total))
        if done == self.done and total is None:
            return
        self.done = done
        if self._quiet:
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=self.total)
        else:
            self._line()

    def _line(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_line >= self.PLAIN_EVERY or self.done == self.total:
            self._last_line = now
            of = "" if self.total is None else f"/{self.total}"
            self._printed = self.done
            print(f"{self.label}: {self.done}{of}", file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        elif not self._quiet and self._last_line and self.done != self._printed:
            self._line(force=True)


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
