"""The one guarded call to a downstream: its circuit breaker, a deadline, and what went wrong.

Every call search makes (Triton's models, Milvus, the features service, the ranker) goes through
`Dependency.call`. A failure comes out as a DependencyError whose `failure` is decided by the
exception's type or gRPC status code, never by its message:

  TIMED_OUT     the deadline passed (our own, or the peer's DEADLINE_EXCEEDED)
  UNAVAILABLE   anything else that kept the call from being answered
  CIRCUIT_OPEN  the breaker refused the call: nothing was sent
  INVALID       the peer refused this request (INVALID_ARGUMENT, OUT_OF_RANGE)
  NOT_LOADED    the peer is up but lacks what was asked for (a Milvus collection not loaded)
  NOT_READY     the model is still being prepared (trained, published, loaded): nothing was sent

Only TIMED_OUT and UNAVAILABLE count as failures for the breaker: a refused request says
nothing about the dependency's health, and a call not made says nothing at all. When the breaker
is open because the connection was lost, it lets probes through as soon as the channel is
connected again, not only after `open_s`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import TypeVar

import grpc

from atelier.serving.circuit_breaker import BreakerSettings, CircuitBreaker, CircuitOpen, State

T = TypeVar("T")
# The client library's own deadline runs this much longer than ours, so that an answer past the
# deadline is always our TimeoutError (never a library-specific timeout), while the peer still
# learns the deadline and can give up too.
CLIENT_GRACE_S = 0.05
TIMED_OUT_CODES = frozenset({grpc.StatusCode.DEADLINE_EXCEEDED})
INVALID_CODES = frozenset({grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE})


class Failure(Enum):
    TIMED_OUT = "timed out"
    UNAVAILABLE = "unavailable"
    CIRCUIT_OPEN = "circuit open"
    INVALID = "invalid request"
    NOT_LOADED = "not loaded"
    NOT_READY = "not ready"


HEALTHY_FAILURES = frozenset({Failure.INVALID, Failure.NOT_LOADED})


class RemoteError(Exception):
    """A peer answered with a gRPC status (clients that do not raise grpc.aio.AioRpcError translate to this)."""

    def __init__(self, code: grpc.StatusCode, detail: str) -> None:
        super().__init__(detail)
        self.code = code


class NotLoaded(Exception):
    """The peer is up but does not hold what was asked for (a Milvus collection that was never loaded)."""


class DependencyError(Exception):
    """A downstream did not answer; `component` names it, `failure` says how."""

    def __init__(self, component: str, failure: Failure, detail: str) -> None:
        super().__init__(f"{component}: {detail}")
        self.component = component
        self.failure = failure
        self.detail = detail

    @property
    def timed_out(self) -> bool:
        return self.failure is Failure.TIMED_OUT

    @property
    def circuit_open(self) -> bool:
        return self.failure is Failure.CIRCUIT_OPEN


def status_code(error: BaseException) -> grpc.StatusCode | None:
    if isinstance(error, grpc.aio.AioRpcError):
        return error.code()
    if isinstance(error, RemoteError):
        return error.code
    return None


def classify(error: BaseException) -> Failure:
    """How a call that was made failed (an open breaker fails before any call: CIRCUIT_OPEN)."""
    if isinstance(error, TimeoutError):
        return Failure.TIMED_OUT
    if isinstance(error, NotLoaded):
        return Failure.NOT_LOADED
    code = status_code(error)
    if code in TIMED_OUT_CODES:
        return Failure.TIMED_OUT
    if code in INVALID_CODES:
        return Failure.INVALID
    return Failure.UNAVAILABLE


def _detail(doing: str, failure: Failure, error: BaseException, timeout_s: float) -> str:
    if failure is Failure.TIMED_OUT and isinstance(error, TimeoutError):
        return f"{doing} over its {timeout_s:g} s deadline"
    message = error.details() if isinstance(error, grpc.aio.AioRpcError) else _words(error)
    # Details reach answers (degradations, statuses): the error's words, never its class.
    return f"{doing} failed: {message or 'no detail given'}"


def _words(error: BaseException) -> str:
    """The error's own message: pymilvus's str() wraps it as `<MilvusException: (code=..., message=...)>`."""
    message = getattr(error, "message", None)
    return message if isinstance(message, str) else str(error)


class Dependency:
    """One downstream behind its circuit breaker; `channel` (optional) is the gRPC channel the calls use."""

    def __init__(
        self,
        name: str,
        breaker: BreakerSettings,
        timeout_s: float,
        channel: grpc.aio.Channel | None = None,
        ready: Callable[[], bool] | None = None,
    ) -> None:
        """`ready` (optional): whether the model behind this dependency is ready; calls wait for it as NOT_READY."""
        if timeout_s <= 0:
            raise ValueError(f"{name}: timeout_s must be positive, got {timeout_s}")
        self.name = name
        self.timeout_s = timeout_s
        self.breaker = CircuitBreaker(name, breaker)
        self._channel = channel
        self._ready = ready
        self._connection_lost = False

    async def call(self, doing: str, operation: Callable[[float], Awaitable[T]], timeout_s: float | None = None) -> T:
        """`operation(client_timeout_s)`'s result within the deadline; DependencyError otherwise.

        `operation` passes the timeout it is given to its client (the peer learns the deadline).
        """
        timeout_s = timeout_s or self.timeout_s
        if self._ready is not None and not self._ready():
            raise DependencyError(self.name, Failure.NOT_READY, f"{doing}: the model is still being prepared")
        try:
            self._admit()
        except CircuitOpen as error:
            raise DependencyError(self.name, Failure.CIRCUIT_OPEN, str(error)) from error
        try:
            result = await asyncio.wait_for(operation(timeout_s + CLIENT_GRACE_S), timeout=timeout_s)
        except Exception as error:
            failure = classify(error)
            self.breaker.record(failure in HEALTHY_FAILURES)
            raise DependencyError(self.name, failure, _detail(doing, failure, error, timeout_s)) from error
        except BaseException:  # cancelled: no outcome to judge
            self.breaker.release()
            raise
        self.breaker.record(True)
        return result

    def _admit(self) -> None:
        if self._channel is not None and self.breaker.state is State.OPEN:
            ready = self._channel.get_state(try_to_connect=True) is grpc.ChannelConnectivity.READY
            if not ready:
                self._connection_lost = True
            elif self._connection_lost:
                # Reconnected after the connection was lost: probe now rather than after open_s.
                self._connection_lost = False
                self.breaker.probe_now()
        self.breaker.check()
