"""OpenTelemetry tracing shared by every process: the tracer provider, the client instrumentations
and the trace context carried in Kafka record headers.

`configure_tracing` is called once per process at start-up (the gRPC services in
atelier.serving.grpc_server, the stream workers in services.stream.faust_app), before any client
is made. With OTEL_TRACES_EXPORTER=otlp it exports batches of spans (BatchSpanProcessor: a request
never waits on the exporter) to OTEL_EXPORTER_OTLP_ENDPOINT and instruments every outbound client:

- gRPC (grpc.aio channels: features, ranker, Triton's and Milvus' clients), by
  opentelemetry-instrumentation-grpc, which also injects `traceparent` into each call's metadata;
- Redis (redis.asyncio), by opentelemetry-instrumentation-redis (commands sanitised: names only);
- Kafka: the features service's produce (`producer_span`, ended on the broker's acknowledgement)
  and the stream workers' processing (`consumer_spans`), continuing the trace from the record's
  `traceparent` header.

Health checks and reflection are not traced (Envoy's health checks every 2 s would bury the rest).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any, Literal

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient, aio_server_interceptor
from opentelemetry.instrumentation.grpc.filters import any_of, negate, service_prefix
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from atelier.serving.settings import Tracing

# Calls that are never traced, as servers or clients.
_UNTRACED_SERVICES = ("grpc.health.", "grpc.reflection.")
_tracer = trace.get_tracer("atelier")


def _untraced():
    return any_of(*(service_prefix(prefix) for prefix in _UNTRACED_SERVICES))


def configure_tracing(service: str, settings: Tracing) -> bool:
    """Installs the tracer provider and the client instrumentations; does nothing (False) when
    OTEL_TRACES_EXPORTER is none. `service` becomes service.name `atelier-<service>`."""
    if settings.traces_exporter == "none":
        return False
    span_exporter: SpanExporter
    if settings.traces_exporter == "console":
        span_exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        endpoint = settings.exporter_otlp_endpoint
        span_exporter = OTLPSpanExporter(endpoint=endpoint, insecure=endpoint.startswith("http://"))
    provider = TracerProvider(resource=Resource.create({"service.name": f"atelier-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    trace.set_tracer_provider(provider)
    # Patches grpc.aio.insecure_channel/secure_channel: every channel made from now on has the
    # client interceptors, tritonclient's and pymilvus' own included.
    _GrpcClientInstrumentor(filter_=negate(_untraced())).instrument()
    RedisInstrumentor().instrument()
    return True


class _EndSpanWhenCallEnds(grpc.aio.UnaryUnaryClientInterceptor):
    """Ends a client span that OpenTelemetry's interceptor would leave open.

    That interceptor ends a unary call's span from a done-callback it adds only after awaiting
    the call's status; a caller that stops waiting first (search's deadline, asyncio.wait_for)
    cancels that await, so the span never ends and a timed-out call, the one worth seeing,
    is missing from its trace. Placed inside it, this sees its span as the current one and ends
    it, with the call's status, once the call is over and only if nothing else ended it.
    """

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, object], Awaitable[grpc.aio.UnaryUnaryCall]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: object,
    ) -> grpc.aio.UnaryUnaryCall:
        span = trace.get_current_span()
        call = await continuation(client_call_details, request)
        if span.is_recording():
            loop = asyncio.get_running_loop()
            try:
                # A task, so that OpenTelemetry's own done-callback, when it was added, runs first.
                call.add_done_callback(lambda done: loop.create_task(_end_if_open(span, done)))
            except NotImplementedError:
                pass
        return call


async def _end_if_open(span: Span, call: grpc.aio.Call) -> None:
    if not span.is_recording():
        return
    code = await call.code()
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    span.set_status(Status(StatusCode.ERROR, f"the caller stopped waiting; the call ended {code.name}"))
    span.end()


class _GrpcClientInstrumentor(GrpcAioInstrumentorClient):
    """OpenTelemetry's grpc.aio client instrumentation, with _EndSpanWhenCallEnds inside its
    interceptors. `_add_interceptors` is the instrumentation's private hook (0.66b2);
    tests/unit/test_tracing.py notices if it changes."""

    def _add_interceptors(self, tracer_provider: TracerProvider | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        theirs = list(kwargs.get("interceptors") or ())
        kwargs = super()._add_interceptors(tracer_provider, {**kwargs, "interceptors": None})
        kwargs["interceptors"] = [*kwargs["interceptors"], _EndSpanWhenCallEnds(), *theirs]
        return kwargs


def server_interceptor():
    """The gRPC server interceptor: a server span per call, continuing the caller's `traceparent`."""
    return aio_server_interceptor(filter_=negate(_untraced()))


def kafka_headers() -> list[tuple[str, bytes]]:
    """The current trace context (W3C `traceparent`, `tracestate`) as Kafka record headers."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(key, value.encode()) for key, value in carrier.items()]


def context_from_headers(headers: Mapping[str, bytes] | Iterable[tuple[str, bytes]]) -> otel_context.Context:
    """The trace context a record's headers carry (an empty one when they carry none)."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    carrier = {key.lower(): value.decode(errors="replace") for key, value in pairs if value is not None}
    return propagate.extract(carrier, context=otel_context.Context())


def _messaging(topic: str, operation: Literal["send", "process"]) -> dict[str, str]:
    return {"messaging.system": "kafka", "messaging.destination.name": topic, "messaging.operation.type": operation}


@contextmanager
def producer_span(topic: str, key: bytes | None = None) -> Iterator[Span]:
    """A PRODUCER span `send <topic>` (child of the current span) for one record; inject its
    context with `kafka_headers()` inside the block, and leave the block once the broker answered."""
    attributes = _messaging(topic, "send")
    if key is not None:
        attributes["messaging.kafka.message.key"] = key.decode(errors="replace")
    with _tracer.start_as_current_span(f"send {topic}", kind=SpanKind.PRODUCER, attributes=attributes) as span:
        yield span


@contextmanager
def consumer_spans(topic: str, records_headers: Iterable[Mapping[str, bytes]]) -> Iterator[None]:
    """CONSUMER spans `process <topic>` for a batch of records handled together, one per trace the
    batch continues (each a child of its record's `traceparent`; records without one share a new
    trace). The first is made current, so the batch's own client calls (the one Redis apply) are its
    children; it links to the others, and each records the batch's size."""
    parents: dict[object, otel_context.Context] = {}
    count = 0
    for headers in records_headers:
        count += 1
        parent = context_from_headers(headers)
        span_context = trace.get_current_span(parent).get_span_context()
        parents.setdefault(span_context.trace_id if span_context.is_valid else None, parent)
    if not parents:
        yield
        return
    attributes = _messaging(topic, "process") | {"messaging.batch.message_count": count}
    first, *others = parents.values()
    links = []
    with ExitStack() as spans:
        for other in others:
            span = _tracer.start_span(f"process {topic}", context=other, kind=SpanKind.CONSUMER, attributes=attributes)
            spans.callback(span.end)
            links.append(Link(span.get_span_context()))
        spans.enter_context(
            _tracer.start_as_current_span(
                f"process {topic}", context=first, kind=SpanKind.CONSUMER, attributes=attributes, links=links
            )
        )
        yield
