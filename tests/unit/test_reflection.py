"""grpcurl resolves every symbol reflection serves (services, methods, messages, fields, enums, enum values),
and nothing the edge hides (the integration test, test_edge_security.py, asks the same through Envoy)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection

from atelier.serving.reflection import enable_server_reflection
from fashion.v1 import ranker_service_pb2
from services.search.__main__ import PUBLIC_POOL, PUBLIC_SERVICES
from tests.grpc_support import EDGE_HIDDEN, EDGE_SERVICES, EDGE_SYMBOLS, grpcurl

HEALTH = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
RANKER = ranker_service_pb2.DESCRIPTOR.services_by_name["RankerService"].full_name


async def _reflecting(names: Sequence[str], pool: DescriptorPool | None) -> AsyncIterator[str]:
    server = grpc.aio.server()
    enable_server_reflection([*names, HEALTH, reflection.SERVICE_NAME], server, pool)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(None)


@pytest.fixture(scope="module")
async def edge() -> AsyncIterator[str]:
    """A server reflecting as search does for the edge: the public API only."""
    async for address in _reflecting(PUBLIC_SERVICES, PUBLIC_POOL):
        yield address


@pytest.fixture(scope="module")
async def internal() -> AsyncIterator[str]:
    """A server reflecting as an internal service does: itself, whole."""
    async for address in _reflecting([RANKER], None):
        yield address


async def _grpcurl(address: str, *args: str) -> tuple[int, str]:
    done = await asyncio.to_thread(grpcurl, address, *args)
    return done.returncode, done.stdout + done.stderr


async def test_the_edge_lists_the_public_services(edge: str) -> None:
    code, output = await _grpcurl(edge, "list")
    assert code == 0, output
    assert output.split() == EDGE_SERVICES


@pytest.mark.parametrize(("symbol", "kind"), EDGE_SYMBOLS.items())
async def test_every_kind_of_symbol_is_described(edge: str, symbol: str, kind: str) -> None:
    code, output = await _grpcurl(edge, "describe", symbol)
    assert code == 0, output
    assert output.startswith(f"{symbol} is {kind}:"), output


@pytest.mark.parametrize("symbol", [*EDGE_HIDDEN, "fashion.v1.SearchService.Nope", "fashion.v1.DegradationReason.NOPE"])
async def test_hidden_and_unknown_symbols_are_not_found(edge: str, symbol: str) -> None:
    code, output = await _grpcurl(edge, "describe", symbol)
    assert code != 0
    assert f"Symbol not found: {symbol}" in output


async def test_an_internal_service_describes_its_methods(internal: str) -> None:
    code, output = await _grpcurl(internal, "describe", f"{RANKER}.Rank")
    assert code == 0, output
    assert output.startswith(f"{RANKER}.Rank is a method:"), output
