"""The retry schedule: 1, 2, 4, 8, 16 … seconds, capped, with jitter.

Jitter only shortens a delay (by up to ``jitter``), so the cap holds and many
clients that failed together don't come back in step.
"""
from __future__ import annotations

import random
from typing import Optional

RETRY_AFTER_MAX = 3600.0  # a server asking for more than an hour is treated as an hour


def backoff_delay(attempt: int, *, base: float = 1.0, cap: float = 60.0, jitter: float = 0.2,
                  rng: Optional[random.Random] = None) -> float:
    """Seconds to wait after the ``attempt``-th failure (1-based)."""
    n = max(1, int(attempt))
    # 2**n overflows floats only past n≈1000; min() with cap keeps it finite long before.
    delay = min(cap, base * (2.0 ** min(n - 1, 64)))
    r = (rng or random).random()
    return delay * (1.0 - jitter * r)


def retry_delay(attempt: int, retry_after: Optional[float], **kw) -> float:
    """The server's Retry-After when it sent one (bounded), else the backoff."""
    if retry_after is not None:
        return min(max(0.0, float(retry_after)), RETRY_AFTER_MAX)
    return backoff_delay(attempt, **kw)
