"""Admission control: a bound on the calls a service works on at once.

Past the bound a call is refused at once with RESOURCE_EXHAUSTED (HTTP 429 at
the edge), so overload shows up as fast, retryable refusals instead of a pile
of calls that all run into their deadlines. Health checks and reflection are
always admitted.
"""

from __future__ import annotations

from typing import Any

import grpc
from prometheus_client import Counter, Gauge

from atelier.serving.telemetry import UnaryBehaviour, UnaryInterceptor

REJECTED = Counter("grpc_server_admission_rejected_total", "Calls refused by admission control.", ["grpc_method"])
IN_FLIGHT = Gauge("grpc_server_in_flight", "Calls being worked on.")
ALWAYS_ADMITTED = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class AdmissionInterceptor(UnaryInterceptor):
    def __init__(self, max_in_flight: int) -> None:
        self._max_in_flight = max_in_flight
        self._in_flight = 0

    def applies(self, method: str) -> bool:
        return not method.startswith(ALWAYS_ADMITTED)

    def wrap(self, method: str, inner: UnaryBehaviour) -> UnaryBehaviour:
        async def admitted(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if self._in_flight >= self._max_in_flight:
                REJECTED.labels(method).inc()
                await context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"overloaded: {self._in_flight} calls in flight (limit {self._max_in_flight}); retry shortly",
                )
            self._in_flight += 1
            IN_FLIGHT.set(self._in_flight)
            try:
                return await inner(request, context)
            finally:
                self._in_flight -= 1
                IN_FLIGHT.set(self._in_flight)

        return admitted
