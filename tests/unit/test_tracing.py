"""Trace context through Kafka headers (atelier.serving.tracing), the local trace receiver
(atelier.stack.trace_receiver) and its span trees (atelier.stack.trace_view)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from atelier.serving.settings import Endpoints, Tracing
from atelier.serving.tracing import (
    _GrpcClientInstrumentor,
    consumer_spans,
    context_from_headers,
    kafka_headers,
    producer_span,
)
from atelier.stack import readiness
from atelier.stack.envoy import render_config
from atelier.stack.trace_receiver import OLDER_SPAN_FILE, SPAN_FILE, SpanFile, local_tracing_environment
from atelier.stack.trace_receiver import SERVICE as TRACE_SERVICE
from atelier.stack.trace_receiver import span_records as received_records
from atelier.stack.trace_view import load_spans, parse_trace_id, recent_traces, trace_tree


@pytest.fixture(scope="module")
def finished() -> InMemorySpanExporter:
    """Spans of this process, recorded in memory (the global provider can be set once only)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider(resource=Resource.create({"service.name": "atelier-test"}))
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def spans(finished: InMemorySpanExporter) -> InMemorySpanExporter:
    finished.clear()
    return finished


tracer = trace.get_tracer("test")


def _ids(span: trace.Span) -> tuple[int, int]:
    context = span.get_span_context()
    return context.trace_id, context.span_id


def test_kafka_headers_carry_the_current_span_and_read_back(spans: InMemorySpanExporter) -> None:
    with tracer.start_as_current_span("request") as span:
        headers = kafka_headers()
    trace_id, span_id = _ids(span)
    assert dict(headers)["traceparent"].startswith(f"00-{trace_id:032x}-{span_id:016x}-".encode())
    for form in (headers, dict(headers)):
        carried = trace.get_current_span(context_from_headers(form)).get_span_context()
        assert (carried.trace_id, carried.span_id, carried.is_remote) == (trace_id, span_id, True)


def test_headers_without_a_trace_give_no_parent() -> None:
    for headers in ({}, {"traceparent": b"garbage"}, {"atelier-retry-attempt": b"1"}):
        assert not trace.get_current_span(context_from_headers(headers)).get_span_context().is_valid


def test_producer_span_is_the_parent_the_record_carries(spans: InMemorySpanExporter) -> None:
    with tracer.start_as_current_span("RecordClick") as request, producer_span("clicks", b"user-1") as send:
        headers = dict(kafka_headers())
    (produced,) = [span for span in spans.get_finished_spans() if span.name == "send clicks"]
    assert produced.kind is SpanKind.PRODUCER
    assert produced.parent.span_id == _ids(request)[1]
    assert produced.attributes["messaging.destination.name"] == "clicks"
    assert produced.attributes["messaging.kafka.message.key"] == "user-1"
    carried = trace.get_current_span(context_from_headers(headers)).get_span_context()
    assert (carried.trace_id, carried.span_id) == _ids(send)


def test_a_batch_continues_every_trace_its_records_carry(spans: InMemorySpanExporter) -> None:
    parents = []
    batch = []
    for name in ("click-a", "click-b"):
        with tracer.start_as_current_span(name) as parent:
            parents.append(_ids(parent))
            batch.append(dict(kafka_headers()))
    batch.append({})  # a record without a trace
    batch.append(batch[0])  # a second record of the first trace
    spans.clear()
    with consumer_spans("clicks", batch), tracer.start_as_current_span("EVALSHA"):
        pass
    finished = spans.get_finished_spans()
    processes = [span for span in finished if span.name == "process clicks"]
    assert len(processes) == 3  # one per trace: a, b and a new one
    assert {span.kind for span in processes} == {SpanKind.CONSUMER}
    assert {span.attributes["messaging.batch.message_count"] for span in processes} == {4}
    by_parent = {span.parent.span_id if span.parent else None: span for span in processes}
    first = by_parent[parents[0][1]]
    assert first.context.trace_id == parents[0][0]
    assert by_parent[parents[1][1]].context.trace_id == parents[1][0]
    assert None in by_parent  # the untraced record's process span starts a trace
    (write,) = [span for span in finished if span.name == "EVALSHA"]
    assert write.parent.span_id == first.context.span_id
    assert {link.context.span_id for link in first.links} == {
        by_parent[parents[1][1]].context.span_id,
        by_parent[None].context.span_id,
    }


def test_an_empty_batch_has_no_span(spans: InMemorySpanExporter) -> None:
    with consumer_spans("clicks", []):
        pass
    assert spans.get_finished_spans() == ()


def _finished_request(spans: InMemorySpanExporter) -> tuple[str, list]:
    spans.clear()
    with tracer.start_as_current_span("SearchText", kind=SpanKind.SERVER) as root:
        with tracer.start_as_current_span("/fashion.v1.RankerService/Rank", kind=SpanKind.CLIENT) as call:
            call.set_attribute("rpc.grpc.status_code", 0)
        with tracer.start_as_current_span("EVALSHA", kind=SpanKind.CLIENT):
            pass
    return f"{root.get_span_context().trace_id:032x}", list(spans.get_finished_spans())


def test_received_spans_print_as_a_tree(spans: InMemorySpanExporter, tmp_path: Path) -> None:
    trace_id, finished = _finished_request(spans)
    request = encode_spans(finished)
    SpanFile(tmp_path).append(list(received_records(list(request.resource_spans))))
    kept = load_spans(tmp_path)
    assert {(span["name"], span["service"], span["kind"]) for span in kept} == {
        ("SearchText", "atelier-test", "server"),
        ("/fashion.v1.RankerService/Rank", "atelier-test", "client"),
        ("EVALSHA", "atelier-test", "client"),
    }
    lines = trace_tree(kept, trace_id)
    assert [line.split("  [")[0] for line in lines] == ["SearchText", "  /fashion.v1.RankerService/Rank", "  EVALSHA"]
    assert "rpc.grpc.status_code=0" in lines[1]
    assert trace_tree(kept, "0" * 32) == []
    (summary,) = recent_traces(kept, 5)
    assert summary.startswith(f"{trace_id}  SearchText ") and "3 spans" in summary


def test_span_file_rotates_and_skips_a_torn_line(tmp_path: Path) -> None:
    store = SpanFile(tmp_path, max_bytes=10)
    record = {"trace_id": "a" * 32, "span_id": "b" * 16, "parent_span_id": "", "name": "x"}
    store.append([record])
    store.append([record | {"name": "y"}])
    assert [json.loads(line)["name"] for line in (tmp_path / OLDER_SPAN_FILE).read_text().splitlines()] == ["x"]
    with (tmp_path / SPAN_FILE).open("a") as out:
        out.write('{"trace_id": "cut sh')
    assert [span["name"] for span in load_spans(tmp_path)] == ["x", "y"]


def test_trace_ids_are_read_from_ids_and_traceparents() -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert parse_trace_id(trace_id.upper()) == trace_id
    assert parse_trace_id(f"00-{trace_id}-00f067aa0ba902b7-01") == trace_id
    with pytest.raises(ValueError, match="not a trace id"):
        parse_trace_id("1234")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_receiver_keeps_what_the_otlp_exporter_sends(spans: InMemorySpanExporter, tmp_path: Path) -> None:
    trace_id, finished = _finished_request(spans)
    port = _free_port()
    command = [sys.executable, "-m", "atelier.stack.trace_receiver", "--host", "127.0.0.1", "--port", str(port)]
    receiver = subprocess.Popen([*command, "--dir", str(tmp_path)])
    exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}", insecure=True, timeout=10)
    try:
        for _ in range(100):
            try:
                readiness.grpc_serving(f"127.0.0.1:{port}", TRACE_SERVICE)
                break
            except grpc.RpcError:
                time.sleep(0.1)
        assert exporter.export(finished).name == "SUCCESS"
    finally:
        exporter.shutdown()
        receiver.terminate()
        receiver.wait(10)
    lines = trace_tree(load_spans(tmp_path), trace_id)
    assert lines[0].startswith("SearchText  [atelier-test server]")


def test_the_local_stack_exports_to_its_receiver_and_envoy_too() -> None:
    endpoints = Endpoints.from_env({"ATELIER_PORT_OFFSET": "5000"})
    environment = local_tracing_environment(endpoints)
    assert environment == {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9317",
    }
    tracing = Tracing.from_env(environment)
    config = render_config(endpoints, tracing=tracing)
    assert "envoy.tracers.opentelemetry" in config
    assert "random_sampling: {value: 100}" in config
    assert "address: 127.0.0.1, port_value: 9317" in config
    assert "x-trace-id" in config
    off = render_config(endpoints, tracing=Tracing.from_env({"OTEL_TRACES_EXPORTER": "none"}))
    assert "random_sampling: {value: 0}" in off


def test_the_otlp_endpoint_names_envoys_collector() -> None:
    assert Tracing.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4317"}).otlp_host_port == ("jaeger", 4317)
    assert Tracing.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:14317"}).otlp_host_port == ("collector", 14317)
    assert Tracing.from_env({}).otlp_host_port == ("localhost", 4317)


async def test_a_call_its_caller_stopped_waiting_for_still_ends_its_client_span(spans: InMemorySpanExporter) -> None:
    async def slow(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        await asyncio.sleep(0.4)
        return request

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("test.Slow", {"Call": grpc.unary_unary_rpc_method_handler(slow)})]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    instrumentor = _GrpcClientInstrumentor()
    instrumentor.instrument()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary("/test.Slow/Call")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(call(b"late", timeout=1.0), timeout=0.05)
            assert await call(b"on time", timeout=2.0) == b"on time"
            for _ in range(60):  # the abandoned call's span ends when the call does
                if len(spans.get_finished_spans()) >= 2:
                    break
                await asyncio.sleep(0.05)
    finally:
        instrumentor.uninstrument()
        await server.stop(None)
    finished = [span for span in spans.get_finished_spans() if span.kind is SpanKind.CLIENT]
    assert [span.name for span in finished] == ["/test.Slow/Call", "/test.Slow/Call"]
    abandoned, answered = sorted(finished, key=lambda span: span.status.status_code is not StatusCode.ERROR)
    assert abandoned.status.status_code is StatusCode.ERROR
    assert "stopped waiting" in (abandoned.status.description or "")
    assert answered.status.status_code is not StatusCode.ERROR
