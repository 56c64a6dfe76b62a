"""Stage timings of one search, from one mechanism: `stage(name)` around each stage.

A stage is an OpenTelemetry span (a child of the RPC's server span, so traces show where a
search spent its time) and an entry in the request's timings, which the answer reports. The
request's timings live in a context variable set by `collect()`: tasks a stage starts (hybrid
search's parallel recalls) share them, and no signature carries them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from opentelemetry import trace

from fashion.v1 import search_service_pb2

_tracer = trace.get_tracer("atelier.search")
_current: ContextVar[dict[str, float] | None] = ContextVar("search_timings", default=None)


class Stage:
    """A running stage; `rename` when what it was is only known at its end (a cache hit)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def rename(self, name: str) -> None:
        self.name = name


@contextmanager
def collect() -> Iterator[dict[str, float]]:
    """The timings (stage -> milliseconds) of the stages run inside this block."""
    stages: dict[str, float] = {}
    token = _current.set(stages)
    try:
        yield stages
    finally:
        _current.reset(token)


@contextmanager
def stage(name: str) -> Iterator[Stage]:
    """Times the block as stage `name` (recorded only when it completes) under a span of that name."""
    running = Stage(name)
    started = time.perf_counter()
    with _tracer.start_as_current_span(f"search.{name}") as span:
        yield running
        span.update_name(f"search.{running.name}")
    stages = _current.get()
    if stages is not None:
        stages[running.name] = (time.perf_counter() - started) * 1000


def as_proto(stages: dict[str, float]) -> list[search_service_pb2.StageTiming]:
    return [search_service_pb2.StageTiming(stage=name, millis=ms) for name, ms in stages.items()]
