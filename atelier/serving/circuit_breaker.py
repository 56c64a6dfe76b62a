"""A circuit breaker per downstream dependency (Resilience4j-style, count-based window).

Closed: calls go through; the outcomes of the last `window` calls are kept.
Once at least `minimum_calls` are recorded and the failure rate reaches
`failure_rate`, it opens: calls fail at once (the caller falls back without
waiting on a dead dependency). After `open_s` it lets `half_open_calls`
probes through; if they all succeed it closes, if any fails it opens again.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from enum import Enum

from prometheus_client import Gauge
from pydantic import Field, PositiveInt
from pydantic_settings import SettingsConfigDict

from atelier.serving.settings import Settings

STATE = Gauge("circuit_breaker_open", "1 while a dependency's circuit breaker is open or half-open.", ["dependency"])


class State(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpen(RuntimeError):
    """The dependency's breaker is open: the call was not made."""

    def __init__(self, name: str) -> None:
        super().__init__(f"circuit breaker for {name} is open")
        self.name = name


class BreakerSettings(Settings):
    """The circuit breakers search keeps, one per downstream (Triton models, Milvus, features, ranker)."""

    model_config = SettingsConfigDict(env_prefix="SEARCH_BREAKER_")

    window: PositiveInt = 50
    """Outcomes of the last calls a breaker judges."""
    failure_rate: float = Field(0.5, gt=0, le=1)
    """Share of failures in the window that opens a breaker."""
    minimum_calls: PositiveInt = 10
    """Calls a breaker must have seen before it may open."""
    open_s: float = Field(5.0, gt=0)
    """How long an open breaker refuses calls before letting probes through (sooner when the connection
    to the dependency was lost and is back)."""
    half_open_calls: PositiveInt = 3
    """Probe calls that must all succeed to close a breaker again."""


class CircuitBreaker:
    def __init__(
        self, name: str, settings: BreakerSettings | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self._settings = settings or BreakerSettings()
        self._clock = clock
        self._outcomes: deque[bool] = deque(maxlen=self._settings.window)
        self._state = State.CLOSED
        self._opened_at = 0.0
        self._probes_left = 0
        self._probe_successes = 0

    @property
    def state(self) -> State:
        if self._state is State.OPEN and self._clock() - self._opened_at >= self._settings.open_s:
            self._state = State.HALF_OPEN
            self._probes_left = self._settings.half_open_calls
            self._probe_successes = 0
        return self._state

    def check(self) -> None:
        """Raises CircuitOpen unless a call may go through now (a half-open probe counts as one)."""
        state = self.state
        if state is State.OPEN or (state is State.HALF_OPEN and self._probes_left <= 0):
            raise CircuitOpen(self.name)
        if state is State.HALF_OPEN:
            self._probes_left -= 1

    def probe_now(self) -> None:
        """Lets probes through now (the caller knows the dependency is back, e.g. reconnected)."""
        if self._state is State.OPEN:
            self._opened_at = self._clock() - self._settings.open_s

    def release(self) -> None:
        """Gives back a probe that was let through but whose call never finished (cancelled)."""
        if self._state is State.HALF_OPEN:
            self._probes_left += 1

    def record(self, success: bool) -> None:
        if self._state is State.HALF_OPEN:
            if not success:
                self._open()
                return
            self._probe_successes += 1
            if self._probe_successes >= self._settings.half_open_calls:
                self._close()
            return
        self._outcomes.append(success)
        failures = self._outcomes.count(False)
        if len(self._outcomes) >= self._settings.minimum_calls and failures / len(self._outcomes) >= (
            self._settings.failure_rate
        ):
            self._open()

    def _open(self) -> None:
        self._state = State.OPEN
        self._opened_at = self._clock()
        self._outcomes.clear()
        STATE.labels(self.name).set(1)

    def _close(self) -> None:
        self._state = State.CLOSED
        self._outcomes.clear()
        STATE.labels(self.name).set(0)
