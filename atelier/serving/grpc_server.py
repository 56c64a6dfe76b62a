"""The one server bootstrap every gRPC service runs on.

grpc.aio server with the standard health and reflection (atelier.serving.reflection) services, Prometheus
metrics, OpenTelemetry tracing, JSON logs and a graceful SIGTERM: health turns
NOT_SERVING first (so Envoy stops routing), then in-flight calls drain.

Every call goes through atelier.serving.request_guard (a malformed request answers
INVALID_ARGUMENT, naming a string field that is not UTF-8; an unexpected exception
INTERNAL without its class or text), and a request over the size limit is refused by
grpc with RESOURCE_EXHAUSTED before it is read: DEFAULT_MAX_REQUEST_BYTES, or more for a
service whose requests carry a photo (search: SEARCH_MAX_IMAGE_BYTES + REQUEST_HEADROOM_BYTES).
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
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from atelier.serving.admission import AdmissionInterceptor
from atelier.serving.logs import configure_logging
from atelier.serving.reflection import enable_server_reflection
from atelier.serving.request_guard import RequestGuard
from atelier.serving.settings import ServerSettings, ServiceSettings
from atelier.serving.telemetry import MetricsInterceptor
from atelier.serving.tracing import configure_tracing, server_interceptor

log = logging.getLogger(__name__)

# Largest request a service reads (grpc's own default); larger ones answer RESOURCE_EXHAUSTED.
DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024
# What a request carries besides its one large field (a photo): room for the other fields.
REQUEST_HEADROOM_BYTES = 64 * 1024
# Answers are ours: a generous bound.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024


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
    # Where reflection finds the descriptors (default: every one imported); the edge-facing
    # service's holds only what the edge routes (atelier.edge.public_api).
    reflection_pool: DescriptorPool | None = None
    # Largest request message accepted (grpc.max_receive_message_length).
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES


async def _serve(spec: ServiceSpec, settings: ServerSettings) -> None:
    server = grpc.aio.server(
        # The first is the outermost; the guard, innermost, sees the servicer's own answers and
        # exceptions, and the metrics count the status it answers with.
        interceptors=[
            MetricsInterceptor(),
            server_interceptor(),
            AdmissionInterceptor(settings.max_in_flight),
            RequestGuard(),
        ],
        options=[
            ("grpc.max_receive_message_length", spec.max_request_bytes),
            ("grpc.max_send_message_length", MAX_RESPONSE_BYTES),
            # Clients (round robin over DNS) reconnect, and so find replicas added since.
            ("grpc.max_connection_age_ms", round(settings.max_connection_age_s * 1000)),
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
    enable_server_reflection(
        # each once (the edge-facing service is one of the public ones it describes)
        list(
            dict.fromkeys(
                [
                    *service_names,
                    *spec.reflected_services,
                    health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                    reflection.SERVICE_NAME,
                ]
            )
        ),
        server,
        pool=spec.reflection_pool,
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
    reflection_pool: DescriptorPool | None = None,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
) -> None:
    """Runs service `name` on its ports of `settings.endpoints` (<name>_port, <name>_metrics_port);
    `max_request_bytes`: the largest request message it reads (never below the default)."""
    endpoints = settings.endpoints
    spec = ServiceSpec(
        name=name,
        host=endpoints.listen_host,
        port=getattr(endpoints, f"{name}_port"),
        metrics_port=getattr(endpoints, f"{name}_metrics_port"),
        build=lambda server, resources: build(settings, server, resources),
        reflected_services=reflected_services,
        reflection_pool=reflection_pool,
        max_request_bytes=max(max_request_bytes, DEFAULT_MAX_REQUEST_BYTES),
    )
    run(spec, settings.server)


def run(spec: ServiceSpec, settings: ServerSettings | None = None) -> None:
    """Runs the service until SIGTERM or SIGINT."""
    settings = settings or ServerSettings.from_env()
    configure_logging(spec.name, settings.log_level)
    configure_tracing(spec.name, settings.tracing)
    asyncio.run(_serve(spec, settings))
