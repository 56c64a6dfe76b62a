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
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from prometheus_client import start_http_server

from atelier.serving.admission import AdmissionInterceptor
from atelier.serving.logs import configure_logging
from atelier.serving.settings import ServerSettings
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
    # Adds the servicers to the server and returns the full service names.
    register: Callable[[grpc.aio.Server], Sequence[str]]
    # Extra service names to describe through reflection (their descriptors
    # must be imported); the edge-facing service describes the whole public API.
    reflected_services: Sequence[str] = ()
    # Awaited in the server's event loop before `register` and after the server stops.
    on_start: Sequence[Callable[[], Awaitable[None]]] = field(default_factory=list)
    on_stop: Sequence[Callable[[], Awaitable[None]]] = field(default_factory=list)


async def _serve(spec: ServiceSpec, settings: ServerSettings) -> None:
    server = grpc.aio.server(
        interceptors=[MetricsInterceptor(), aio_server_interceptor(), AdmissionInterceptor(settings.max_in_flight)],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ],
    )
    for hook in spec.on_start:
        await hook()
    service_names = list(spec.register(server))
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
    for hook in spec.on_stop:
        await hook()
    log.info("stopped")


def run(spec: ServiceSpec, settings: ServerSettings | None = None) -> None:
    """Runs the service until SIGTERM or SIGINT."""
    settings = settings or ServerSettings.from_env()
    configure_logging(spec.name, settings.log_level)
    configure_tracing(spec.name, settings.traces_exporter)
    asyncio.run(_serve(spec, settings))
