"""The shared server bootstrap, run as a real process: health, reflection, metrics, JSON logs, graceful SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from atelier.serving.settings import ROOT
from atelier.stack.readiness import port_in_use
from fashion.v1 import ranker_service_pb2 as pb
from fashion.v1 import ranker_service_pb2_grpc as pb_grpc
from tests.integration.conftest import offset_ports

PORT, METRICS_PORT = offset_ports(27601, 27602)


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[subprocess.Popen]:
    assert not port_in_use("127.0.0.1", PORT)
    limit = request.node.get_closest_marker("max_in_flight")
    env = os.environ | ({"ATELIER_MAX_IN_FLIGHT": str(limit.args[0])} if limit else {})
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.support.slow_ranker", str(PORT), str(METRICS_PORT)],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while not port_in_use("127.0.0.1", PORT):
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.1)
    yield process
    if process.poll() is None:
        process.kill()
        process.wait()


def test_health_reflection_and_metrics(server: subprocess.Popen) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{PORT}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", "fashion.v1.RankerService"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
        assert {"fashion.v1.RankerService", "grpc.health.v1.Health"} <= services
        pb_grpc.RankerServiceStub(channel).Rank(pb.RankRequest(), timeout=5)
    with urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    assert 'grpc_server_handling_seconds_count{grpc_code="OK",grpc_method="Rank"' in metrics


def test_sigterm_drains_in_flight_calls_then_exits_cleanly(server: subprocess.Popen) -> None:
    result: dict[str, object] = {}

    def call() -> None:
        with grpc.insecure_channel(f"127.0.0.1:{PORT}") as channel:
            request = pb.RankRequest(candidates=[pb.RankCandidate(article_id="0108775015")])
            result["reply"] = pb_grpc.RankerServiceStub(channel).Rank(request, timeout=10)

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.5)  # the call is in flight
    server.send_signal(signal.SIGTERM)
    caller.join(timeout=10)
    assert [item.article_id for item in result["reply"].items] == ["0108775015"]
    assert server.wait(timeout=15) == 0
    logs = [json.loads(line) for line in server.stderr.read().splitlines() if line.startswith("{")]
    assert [entry["message"] for entry in logs][-2:] == ["shutting down", "stopped"]
    assert all(entry["service"] == "slow-ranker" for entry in logs)


@pytest.mark.max_in_flight(2)
def test_overload_is_refused_at_once_with_resource_exhausted(server: subprocess.Popen) -> None:
    def call(_: int) -> tuple[grpc.StatusCode, float]:
        started = time.monotonic()
        with grpc.insecure_channel(f"127.0.0.1:{PORT}") as channel:
            try:
                pb_grpc.RankerServiceStub(channel).Rank(pb.RankRequest(), timeout=10)
                code = grpc.StatusCode.OK
            except grpc.RpcError as error:
                code = error.code()
        return code, time.monotonic() - started

    with ThreadPoolExecutor(max_workers=5) as pool:
        calls = [pool.submit(call, i) for i in range(5)]
        time.sleep(0.5)  # two calls are in flight, the service is full
        with grpc.insecure_channel(f"127.0.0.1:{PORT}") as channel:  # health is always admitted
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        outcomes = [c.result() for c in calls]
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    codes = sorted(code.name for code, _ in outcomes)
    assert codes == ["OK", "OK", "RESOURCE_EXHAUSTED", "RESOURCE_EXHAUSTED", "RESOURCE_EXHAUSTED"]
    assert all(seconds < 1.0 for code, seconds in outcomes if code is grpc.StatusCode.RESOURCE_EXHAUSTED)
