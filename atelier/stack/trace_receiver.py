"""The local stack's trace receiver: OTLP/gRPC's TraceService, keeping every span as a JSON line.

`atelier up` runs it (component `traces`, on ATELIER_TRACE_RECEIVER_PORT) and points every service,
stream worker and Envoy at it (`local_tracing_environment`); `atelier trace` / `atelier traces`
(atelier.stack.trace_view) read what it keeps. Containers send their spans to Jaeger instead.

Spans go to `spans.jsonl` in its folder; past `max_bytes` that file becomes `spans.1.jsonl` (the
one before is dropped), so the folder holds at most about twice `max_bytes`.

`python -m atelier.stack.trace_receiver --host H --port P --dir D`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, Status

from atelier.serving.settings import Endpoints

SERVICE = trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"].full_name
SPAN_FILE = "spans.jsonl"
OLDER_SPAN_FILE = "spans.1.jsonl"
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
# OTLP batches from Envoy and the SDKs are far below this.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


def local_tracing_environment(endpoints: Endpoints) -> dict[str, str]:
    """What the local stack's processes are given unless the user set it: export to this receiver."""
    return {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{endpoints.address(endpoints.trace_receiver_port)}",
    }


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind in ("string_value", "bool_value", "int_value", "double_value"):
        return getattr(value, kind)
    return MessageToDict(value) if kind else None


def span_record(service: str, span: Span) -> dict[str, Any]:
    """One span as kept: ids in hex (as traceparent writes them), times in ns since the epoch."""
    record: dict[str, Any] = {
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex(),
        "name": span.name,
        "service": service,
        "kind": Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_").lower(),
        "start_ns": span.start_time_unix_nano,
        "end_ns": span.end_time_unix_nano,
        "status": Status.StatusCode.Name(span.status.code).removeprefix("STATUS_CODE_").lower(),
        "attributes": {attribute.key: _value(attribute.value) for attribute in span.attributes},
    }
    if span.status.message:
        record["status_message"] = span.status.message
    if span.links:
        record["links"] = [{"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex()} for link in span.links]
    return record


def span_records(resource_spans: list[ResourceSpans]) -> Iterator[dict[str, Any]]:
    for resource in resource_spans:
        attributes = {attribute.key: _value(attribute.value) for attribute in resource.resource.attributes}
        service = str(attributes.get("service.name", "unknown"))
        for scope in resource.scope_spans:
            for span in scope.spans:
                yield span_record(service, span)


class SpanFile:
    """Appends span records to `spans.jsonl` in `directory`, rotating past `max_bytes`."""

    def __init__(self, directory: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)

    def append(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        path = self.directory / SPAN_FILE
        if path.exists() and path.stat().st_size >= self.max_bytes:
            path.replace(self.directory / OLDER_SPAN_FILE)
        text = "".join(json.dumps(record, separators=(",", ":")) + "\n" for record in records)
        with path.open("a", encoding="utf-8") as out:
            out.write(text)


class TraceReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, spans: SpanFile) -> None:
        self._spans = spans

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.aio.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self._spans.append(list(span_records(list(request.resource_spans))))
        return trace_service_pb2.ExportTraceServiceResponse()


async def serve(host: str, port: int, spans: SpanFile) -> None:
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)])
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceReceiver(spans), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if server.add_insecure_port(f"{host}:{port}") == 0:
        raise SystemExit(f"trace receiver: cannot listen on {host}:{port}")
    await server.start()
    await health_servicer.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    await server.stop(2)


def main() -> None:
    parser = argparse.ArgumentParser(description="OTLP/gRPC span receiver writing JSON lines")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True, help="folder of spans.jsonl")
    parser.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, SpanFile(args.dir, args.max_bytes)))


if __name__ == "__main__":
    main()
