"""Metrics shared by every service (tracing: atelier.serving.tracing)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from prometheus_client import Counter, Histogram

RPC_LATENCY = Histogram(
    "grpc_server_handling_seconds",
    "Time to handle a gRPC call, by method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
RPC_STARTED = Counter("grpc_server_started_total", "gRPC calls started.", ["grpc_service", "grpc_method"])


UnaryBehaviour = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


class UnaryInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every unary-unary handler whose method `applies`; streaming ones pass untouched."""

    def applies(self, method: str) -> bool:
        return True

    def wrap(self, method: str, inner: UnaryBehaviour) -> UnaryBehaviour:
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or handler.unary_unary is None or not self.applies(method):
            return handler
        return grpc.unary_unary_rpc_method_handler(
            self.wrap(method, handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class MetricsInterceptor(UnaryInterceptor):
    """Counts and times every unary call in Prometheus metrics."""

    def wrap(self, method: str, inner: UnaryBehaviour) -> UnaryBehaviour:
        _, service, name = method.split("/", 2)

        async def timed(request: Any, context: grpc.aio.ServicerContext) -> Any:
            RPC_STARTED.labels(service, name).inc()
            start = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                return await inner(request, context)
            except BaseException:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            finally:
                if code is grpc.StatusCode.OK and context.code() is not None:
                    code = context.code()
                RPC_LATENCY.labels(service, name, code.name).observe(time.perf_counter() - start)

        return timed
