"""Per-key rate limits: a token bucket per key name, in the authorization service's memory (one
per Envoy: with several Envoy replicas, each applies the limit to what it sees)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """`take(name, rate, burst)`: 0.0 when the key may go ahead (a token taken), else the seconds
    until its next token. A bucket starts full and refills at `rate` tokens per second up to `burst`."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, name: str, rate_per_s: float, burst: int) -> float:
        now = self._clock()
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = self._buckets[name] = _Bucket(float(burst), now)
        bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.updated) * rate_per_s)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / rate_per_s


def retry_after(seconds: float) -> str:
    """The `retry-after` header's value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
