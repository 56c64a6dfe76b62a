"""Internal channels spread calls over every replica of a peer (round robin), search's and Triton's alike; in k8s
DNS names every replica because the peers' Services are headless."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import grpc
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from atelier.serving.channels import insecure_channel
from atelier.serving.triton_client import TritonClient
from fashion.v1 import ranker_service_pb2 as ranker_pb
from fashion.v1 import ranker_service_pb2_grpc as ranker_grpc
from services.ranker.config import RankerSettings
from services.ranker.servicer import RankerServicer
from tests.k8s_support import KUSTOMIZATIONS, find, of_kind, render

CALLS = 20


class CallCounter(grpc.aio.ServerInterceptor):
    """Counts the calls its server receives."""

    def __init__(self) -> None:
        self.calls = 0

    async def intercept_service(self, continuation, handler_call_details):
        self.calls += 1
        return await continuation(handler_call_details)


class ReadyTriton(service_pb2_grpc.GRPCInferenceServiceServicer):
    """Triton's ModelReady, always ready."""

    async def ModelReady(self, request, context):
        return service_pb2.ModelReadyResponse(ready=True)


@asynccontextmanager
async def replicas(add: Callable[[grpc.aio.Server], None], n: int = 2) -> AsyncIterator[tuple[str, list[CallCounter]]]:
    """`n` servers on loopback ports of their own, each with `add`'s servicer; a target naming them all
    (as DNS names every pod of a headless Service), and each one's call counter."""
    counters, servers, ports = [], [], []
    for _ in range(n):
        counter = CallCounter()
        server = grpc.aio.server(interceptors=[counter])
        add(server)
        ports.append(server.add_insecure_port("127.0.0.1:0"))
        await server.start()
        counters.append(counter)
        servers.append(server)
    try:
        yield "ipv4:" + ",".join(f"127.0.0.1:{port}" for port in ports), counters
    finally:
        for server in servers:
            await server.stop(None)


async def test_search_channels_call_every_replica_of_the_ranker() -> None:
    def add(server: grpc.aio.Server) -> None:
        ranker_grpc.add_RankerServiceServicer_to_server(RankerServicer(RankerSettings.from_env({})), server)

    async with replicas(add) as (target, counters):
        async with insecure_channel(target) as channel:
            stub = ranker_grpc.RankerServiceStub(channel)
            request = ranker_pb.RankRequest(candidates=[ranker_pb.RankCandidate(article_id="a1", score=1.0)], k=1)
            for _ in range(CALLS):
                await stub.Rank(request, timeout=5, wait_for_ready=True)
    assert all(counter.calls > 0 for counter in counters), [counter.calls for counter in counters]
    assert sum(counter.calls for counter in counters) == CALLS


async def test_the_triton_client_calls_every_replica() -> None:
    def add(server: grpc.aio.Server) -> None:
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(ReadyTriton(), server)

    async with replicas(add) as (target, counters):
        triton = TritonClient(target)
        try:
            for _ in range(CALLS):
                assert await triton.model_ready("text_embedding", timeout_s=5)
        finally:
            await triton.close()
    assert all(counter.calls > 0 for counter in counters), [counter.calls for counter in counters]


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_k8s_names_every_replica_of_each_grpc_peer(kustomization: str) -> None:
    """The hosts search's channels dial (atelier-env) are headless Services: DNS answers with every ready pod,
    which round robin then spreads calls over (a ClusterIP would be one address, one pod per connection)."""
    documents = render(kustomization)
    environment = find(documents, "ConfigMap", "atelier-env")["data"]
    services = of_kind(documents, "Service")
    for peer in ("RANKER", "FEATURES", "TRITON"):
        name = environment[f"ATELIER_{peer}_HOST"].split(".")[0]
        assert services[name]["spec"].get("clusterIP") == "None", f"{kustomization}: Service {name} is not headless"


class FailsFirstCall(grpc.aio.ServerInterceptor):
    """A replica whose first call fails UNAVAILABLE (it dies under it, say); later ones go through."""

    def __init__(self) -> None:
        self.failed = False

    async def intercept_service(self, continuation, handler_call_details):
        if self.failed:
            return await continuation(handler_call_details)
        self.failed = True

        async def unavailable(request, context):
            await context.abort(grpc.StatusCode.UNAVAILABLE, "going away")

        return grpc.unary_unary_rpc_method_handler(unavailable)


async def test_a_call_a_replica_fails_unavailable_is_tried_again() -> None:
    """The channel options retry UNAVAILABLE once (on the next replica, round robin): a caller sees no error."""
    failing = FailsFirstCall()
    server = grpc.aio.server(interceptors=[failing])
    ranker_grpc.add_RankerServiceServicer_to_server(RankerServicer(RankerSettings.from_env({})), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = ranker_grpc.RankerServiceStub(channel)
            request = ranker_pb.RankRequest(candidates=[ranker_pb.RankCandidate(article_id="a1", score=1.0)], k=1)
            reply = await stub.Rank(request, timeout=5, wait_for_ready=True)
    finally:
        await server.stop(None)
    assert failing.failed
    assert [item.article_id for item in reply.items] == ["a1"]
