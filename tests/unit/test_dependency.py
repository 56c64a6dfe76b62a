"""The guarded call: deadline, breaker, and failures classified by type and status code."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from atelier.serving.circuit_breaker import BreakerSettings, State
from atelier.serving.dependency import Dependency, DependencyError, Failure, NotLoaded, RemoteError, classify

SETTINGS = BreakerSettings(window=4, minimum_calls=2, open_s=60, half_open_calls=1)


def rpc_error(code: grpc.StatusCode, details: str = "boom") -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


@pytest.mark.parametrize(
    ("error", "failure"),
    [
        (TimeoutError(), Failure.TIMED_OUT),
        (rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED), Failure.TIMED_OUT),
        (RemoteError(grpc.StatusCode.DEADLINE_EXCEEDED, "slow"), Failure.TIMED_OUT),
        (rpc_error(grpc.StatusCode.UNAVAILABLE), Failure.UNAVAILABLE),
        (RemoteError(grpc.StatusCode.INTERNAL, "the word deadline or timeout here means nothing"), Failure.UNAVAILABLE),
        (ConnectionError("timeout"), Failure.UNAVAILABLE),
        (rpc_error(grpc.StatusCode.INVALID_ARGUMENT), Failure.INVALID),
        (RemoteError(grpc.StatusCode.OUT_OF_RANGE, "x"), Failure.INVALID),
        (NotLoaded("collection articles_text does not exist"), Failure.NOT_LOADED),
    ],
)
def test_failures_are_classified_by_type_and_status_code_not_by_message(error: Exception, failure: Failure) -> None:
    assert classify(error) is failure


async def test_a_call_past_its_deadline_times_out_and_says_which() -> None:
    dependency = Dependency("clip", SETTINGS, timeout_s=0.05)
    given: list[float] = []

    async def slow(timeout_s: float) -> None:
        given.append(timeout_s)
        await asyncio.sleep(5)

    with pytest.raises(DependencyError) as caught:
        await dependency.call("clip_text", slow)
    assert caught.value.timed_out and caught.value.component == "clip"
    assert str(caught.value) == "clip: clip_text over its 0.05 s deadline"
    assert given[0] > 0.05  # the client's own deadline runs just past ours: the timeout is always ours


async def test_failures_open_the_breaker_and_an_open_breaker_calls_nothing() -> None:
    dependency = Dependency("features", SETTINGS, timeout_s=1)
    calls = 0

    async def failing(timeout_s: float) -> None:
        nonlocal calls
        calls += 1
        raise rpc_error(grpc.StatusCode.UNAVAILABLE, "connection refused")

    for _ in range(2):
        with pytest.raises(DependencyError) as caught:
            await dependency.call("user features", failing)
        assert caught.value.failure is Failure.UNAVAILABLE
        assert caught.value.detail == "user features failed: connection refused"
    with pytest.raises(DependencyError) as caught:
        await dependency.call("user features", failing)
    assert caught.value.circuit_open and calls == 2


async def test_a_refused_request_does_not_count_against_the_dependency() -> None:
    dependency = Dependency("milvus", SETTINGS, timeout_s=1)

    async def not_loaded(timeout_s: float) -> None:
        raise NotLoaded("collection articles_image does not exist")

    for _ in range(5):
        with pytest.raises(DependencyError) as caught:
            await dependency.call("retrieval", not_loaded)
        assert caught.value.failure is Failure.NOT_LOADED
    assert dependency.breaker.state is State.CLOSED


async def test_a_cancelled_probe_is_given_back() -> None:
    dependency = Dependency("ranker", BreakerSettings(window=2, minimum_calls=1, open_s=0.01, half_open_calls=1), 1)

    async def failing(timeout_s: float) -> None:
        raise rpc_error(grpc.StatusCode.UNAVAILABLE)

    with pytest.raises(DependencyError):
        await dependency.call("rank", failing)
    await asyncio.sleep(0.02)  # half-open: one probe allowed
    probe = asyncio.create_task(dependency.call("rank", lambda timeout_s: asyncio.sleep(5)))
    await asyncio.sleep(0.01)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert await dependency.call("rank", lambda timeout_s: asyncio.sleep(0, "ok")) == "ok"  # the probe was given back
    assert dependency.breaker.state is State.CLOSED


class FakeChannel:
    def __init__(self) -> None:
        self.state = grpc.ChannelConnectivity.READY

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self.state


async def test_a_reconnected_channel_lets_probes_through_before_open_s() -> None:
    channel = FakeChannel()
    dependency = Dependency("features", SETTINGS, 1, channel)  # type: ignore[arg-type]

    async def refused(timeout_s: float) -> None:
        raise rpc_error(grpc.StatusCode.UNAVAILABLE)

    channel.state = grpc.ChannelConnectivity.TRANSIENT_FAILURE  # the peer went away
    for _ in range(2):
        with pytest.raises(DependencyError):
            await dependency.call("user features", refused)
    with pytest.raises(DependencyError) as caught:
        await dependency.call("user features", refused)
    assert caught.value.circuit_open  # open for 60 s...
    channel.state = grpc.ChannelConnectivity.READY  # ...but the peer is back
    assert await dependency.call("user features", lambda timeout_s: asyncio.sleep(0, "ok")) == "ok"
    assert dependency.breaker.state is State.CLOSED


async def test_a_slow_peer_that_stays_connected_keeps_its_breaker_open() -> None:
    channel = FakeChannel()  # READY throughout: connected, but not answering in time
    dependency = Dependency("ranker", SETTINGS, 0.01, channel)  # type: ignore[arg-type]
    for _ in range(2):
        with pytest.raises(DependencyError):
            await dependency.call("rank", lambda timeout_s: asyncio.sleep(1))
    with pytest.raises(DependencyError) as caught:
        await dependency.call("rank", lambda timeout_s: asyncio.sleep(0))
    assert caught.value.circuit_open


async def test_a_model_not_ready_is_not_called_and_does_not_count_against_it() -> None:
    ready = False
    dependency = Dependency("reranker", SETTINGS, timeout_s=1, ready=lambda: ready)
    calls: list[float] = []

    async def score(timeout_s: float) -> str:
        calls.append(timeout_s)
        return "scores"

    for _ in range(5):
        with pytest.raises(DependencyError) as caught:
            await dependency.call("rerank", score)
        assert caught.value.failure is Failure.NOT_READY
        assert str(caught.value) == "reranker: rerank: the model is still being prepared"
    assert calls == [] and dependency.breaker.state is State.CLOSED
    ready = True
    assert await dependency.call("rerank", score) == "scores"
