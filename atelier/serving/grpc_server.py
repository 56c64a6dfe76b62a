"""The one server bootstrap every gRPC service runs on.

grpc.aio server with the standard health and reflection services, Prometheus
metrics, OpenTelemetry tracing, JSON logs and a graceful SIGTERM: health turns
NOT_SERVING first (so Envoy stops routing), then in-flight calls drain.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from prometheus_client import start_http_server

from atelier.serving.admission import AdmissionInterceptor
from atelier.serving.logs import configure_logging
from atelier.serving.settings import ServerSettings, ServiceSettings
from atelier.serving.telemetry import MetricsInterceptor, configure_tracing

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024


@dataclass
class ServiceSpec:
    """What a service contributes to the shared server."""

    name: str
    host: str
    port: int
    metrics_port: int
    # Builds the service in the server's event loop (clients belong to the loop that made them):
    # makes its clients, pushing how to close each onto the exit stack (closed after the server
    # stops, last made first), adds its servicers to the server and returns their full names.
    build: Callable[[grpc.aio.Server, AsyncExitStack], Awaitable[Sequence[str]]]
    # Extra service names to describe through reflection (their descriptors
    # must be imported); the edge-facing service describes the whole public API.
    reflected_services: Sequence[str] = ()


async def _serve(spec: ServiceSpec, settings: ServerSettings) -> None:
    server = grpc.aio.server(
        interceptors=[MetricsInterceptor(), aio_server_interceptor(), AdmissionInterceptor(settings.max_in_flight)],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ],
    )
    async with AsyncExitStack() as resources:
        service_names = list(await spec.build(server, resources))
        await _serve_until_stopped(server, spec, service_names, settings)


async def _serve_until_stopped(
    server: grpc.aio.Server, spec: ServiceSpec, service_names: list[str], settings: ServerSettings
) -> None:
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [
            *service_names,
            *spec.reflected_services,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    address = f"{spec.host}:{spec.port}"
    if server.add_insecure_port(address) == 0:
        raise SystemExit(f"{spec.name}: cannot listen on {address}")
    start_http_server(spec.metrics_port, addr=spec.host)

    await server.start()
    for name in ["", *service_names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("serving", extra={"address": address, "services": service_names})

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()

    log.info("shutting down", extra={"grace_s": settings.shutdown_grace_s})
    await health_servicer.enter_graceful_shutdown()
    await server.stop(settings.shutdown_grace_s)
    log.info("stopped")


S = TypeVar("S", bound=ServiceSettings)


def serve(
    name: str,
    settings: S,
    build: Callable[[S, grpc.aio.Server, AsyncExitStack], Awaitable[Sequence[str]]],
    reflected_services: Sequence[str] = (),
) -> None:
    """Runs service `name` on its ports of `settings.endpoints` (<name>_port, <name>_metrics_port)."""
    endpoints = settings.endpoints
    spec = ServiceSpec(
        name=name,
        host=endpoints.listen_host,
        port=getattr(endpoints, f"{name}_port"),
        metrics_port=getattr(endpoints, f"{name}_metrics_port"),
        build=lambda server, resources: build(settings, server, resources),
        reflected_services=reflected_services,
    )
    run(spec, settings.server)


def run(spec: ServiceSpec, settings: ServerSettings | None = None) -> None:
    """Runs the service until SIGTERM or SIGINT."""
    settings = settings or ServerSettings.from_env()
    configure_logging(spec.name, settings.log_level)
    configure_tracing(spec.name, settings.traces_exporter)
    asyncio.run(_serve(spec, settings))
