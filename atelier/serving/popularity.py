"""Rolling popularity in Redis: time-bucketed sorted sets per window, plus a decayed global set.

Windows (behaviour spec): 1h = 12 buckets of 300 s, 24h = 24 buckets of 3600 s,
7d = 7 buckets of 86400 s. A bucket holds article -> clicks in [start, start + bucket);
it expires once it can no longer fall in its window. The global set holds a score
decayed with a 7-day half-life, for the last-resort fallback. Both are sharded by
article (key names: atelier.serving.feature_store.keys); this module is their time maths.
A sorted set cannot decay every member on each click, so its scores are kept relative
to a fixed epoch: a click at time t adds
exp(rate * (t - epoch)); the decayed score at `now` is the stored score times
exp(-rate * (now - epoch)), and the order never needs rewriting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

GLOBAL_MAX_ITEMS = 10_000
HALF_LIFE_S = 7 * 86400.0
DECAY_RATE = math.log(2) / HALF_LIFE_S
# 2026-01-01T00:00:00Z. Scores grow 2x a week from here: float64 holds them for ~19 years.
GLOBAL_EPOCH_S = 1_767_225_600


@dataclass(frozen=True)
class Window:
    name: str
    bucket_s: int
    buckets: int

    @property
    def span_s(self) -> int:
        return self.bucket_s * self.buckets

    def bucket_start(self, epoch_s: float) -> int:
        return int(epoch_s // self.bucket_s) * self.bucket_s

    def expires_at(self, epoch_s: float) -> int:
        """When the bucket holding `epoch_s` has left every window that ends later."""
        return self.bucket_start(epoch_s) + self.bucket_s + self.span_s

    def active_starts(self, now_s: float) -> list[int]:
        """Starts of the buckets that make up the window ending now, newest first."""
        newest = self.bucket_start(now_s)
        return [newest - i * self.bucket_s for i in range(self.buckets)]


HOUR = Window("1h", 300, 12)
DAY = Window("24h", 3600, 24)
WEEK = Window("7d", 86400, 7)
WINDOWS = (HOUR, DAY, WEEK)


def decay_factor(elapsed_s: float) -> float:
    return math.exp(-DECAY_RATE * max(0.0, elapsed_s))


def global_increment(event_s: float) -> float:
    """What one click at `event_s` adds to its article's stored global score."""
    return math.exp(DECAY_RATE * (event_s - GLOBAL_EPOCH_S))


def global_score_at(stored: float, now_s: float) -> float:
    """A stored global score decayed to `now_s` (clicks)."""
    return stored * math.exp(-DECAY_RATE * (now_s - GLOBAL_EPOCH_S))
