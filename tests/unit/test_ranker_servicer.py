"""RankerService in-process on a real grpc.aio server (loopback, a free port)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from fashion.v1 import features_pb2
from fashion.v1 import ranker_service_pb2 as pb
from fashion.v1 import ranker_service_pb2_grpc as pb_grpc
from services.ranker.config import RankerSettings
from services.ranker.policy import BoostSettings
from services.ranker.servicer import RankerServicer
from tests.grpc_support import field_violations

SETTINGS = RankerSettings.from_env({"RANKER_MAX_CANDIDATES": "1000"})


@pytest.fixture(scope="module")
async def ranker() -> AsyncIterator[pb_grpc.RankerServiceStub]:
    server = grpc.aio.server()
    pb_grpc.add_RankerServiceServicer_to_server(RankerServicer(SETTINGS), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield pb_grpc.RankerServiceStub(channel)
    await server.stop(None)


def _candidate(article_id: str, score: float = 1.0, category: str = "Trousers") -> pb.RankCandidate:
    return pb.RankCandidate(article_id=article_id, category=category, score=score)


async def test_a_realistic_request_round_trip(ranker: pb_grpc.RankerServiceStub) -> None:
    request = pb.RankRequest(
        user_id="u1",
        candidates=[
            _candidate("0108775015", 0.92, "Vest top"),
            _candidate("0706016001", 0.90, "Trousers"),
            _candidate("0372860001", 0.85, "Socks"),
            _candidate("0610776002", 0.80, "T-shirt"),
            _candidate("0759871002", 0.40, "Vest top"),
        ],
        user_features=features_pb2.UserFeatures(
            user_id="u1",
            recent_clicks=[features_pb2.RecentClick(article_id="0610776002")],
            category_affinities=[features_pb2.CategoryAffinity(category="Trousers", score=3.0)],
        ),
        item_signals=[
            features_pb2.ItemSignals(article_id="0372860001", popularity_1h=4, popularity_24h=9, popularity_7d=20),
            features_pb2.ItemSignals(article_id="0108775015", popularity_1h=0, popularity_24h=0, popularity_7d=0),
        ],
        k=4,
    )
    reply = await ranker.Rank(request, timeout=5)
    items = {item.article_id: item for item in reply.items}
    assert [item.article_id for item in reply.items] == ["0610776002", "0372860001", "0706016001", "0108775015"]
    assert [item.rank for item in reply.items] == [1, 2, 3, 4]
    assert items["0610776002"].boost == pytest.approx(1.5)  # recently clicked
    assert items["0610776002"].score == pytest.approx(1.2)
    assert items["0610776002"].behaviour_score == pytest.approx(0.4)
    assert items["0372860001"].boost == pytest.approx(1.35)  # the most popular in every window
    assert items["0706016001"].boost == pytest.approx(1.2)  # saturated category affinity
    assert items["0108775015"].boost == 1.0
    assert items["0108775015"].behaviour_score == 0.0


async def test_anonymous_request_keeps_the_rerank_order(ranker: pb_grpc.RankerServiceStub) -> None:
    request = pb.RankRequest(
        candidates=[_candidate("a", 0.9), _candidate("b", 0.9), _candidate("c", 0.2)],
        item_signals=[features_pb2.ItemSignals(article_id="c", popularity_1h=50)],
    )
    reply = await ranker.Rank(request, timeout=5)
    assert [(item.article_id, item.boost, item.rank) for item in reply.items] == [("a", 1, 1), ("b", 1, 2), ("c", 1, 3)]


async def test_empty_request_is_an_empty_answer(ranker: pb_grpc.RankerServiceStub) -> None:
    assert list((await ranker.Rank(pb.RankRequest(user_id="u1"), timeout=5)).items) == []


@pytest.mark.parametrize(
    ("request_", "fields"),
    [
        (pb.RankRequest(candidates=[_candidate("a"), _candidate("b"), _candidate("a")]), ["candidates[2].article_id"]),
        (pb.RankRequest(candidates=[_candidate("")]), ["candidates[0].article_id"]),
        (
            pb.RankRequest(
                candidates=[_candidate("a"), _candidate("b"), _candidate("c"), _candidate("d", float("nan"))]
            ),
            ["candidates[3].score"],
        ),
        (pb.RankRequest(candidates=[_candidate("a", float("-inf"))]), ["candidates[0].score"]),
        (pb.RankRequest(candidates=[_candidate("a")], k=-1), ["k"]),
        (pb.RankRequest(candidates=[_candidate(str(i)) for i in range(1001)]), ["candidates"]),
        (pb.RankRequest(user_id="u" * 129), ["user_id"]),
        (
            pb.RankRequest(user_id="u1", user_features=features_pb2.UserFeatures(user_id="u2")),
            ["user_features.user_id"],
        ),
        (
            pb.RankRequest(user_features=features_pb2.UserFeatures(user_id="u2")),
            ["user_features.user_id"],
        ),
        (
            pb.RankRequest(
                user_id="u1",
                user_features=features_pb2.UserFeatures(
                    category_affinities=[features_pb2.CategoryAffinity(category="Dress", score=float("inf"))]
                ),
            ),
            ["user_features.category_affinities[0].score"],
        ),
        (
            pb.RankRequest(
                item_signals=[
                    features_pb2.ItemSignals(article_id="a"),
                    features_pb2.ItemSignals(article_id="a", popularity_24h=-1),
                ]
            ),
            ["item_signals[1].article_id", "item_signals[1].popularity_24h"],
        ),
        (
            pb.RankRequest(user_id="u" * 200, candidates=[_candidate("a", float("nan"))], k=-5),
            ["user_id", "candidates[0].score", "k"],
        ),
    ],
)
async def test_invalid_requests_name_each_field(
    ranker: pb_grpc.RankerServiceStub, request_: pb.RankRequest, fields: list[str]
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ranker.Rank(request_, timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(raised.value) == fields
    assert fields[0] in raised.value.details()


async def test_a_thousand_bad_scores_still_answer_invalid_argument(ranker: pb_grpc.RankerServiceStub) -> None:
    request = pb.RankRequest(candidates=[_candidate(str(i), float("nan")) for i in range(1000)])
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ranker.Rank(request, timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(raised.value) == [f"candidates[{i}].score" for i in range(10)]


def test_settings_from_env() -> None:
    settings = RankerSettings.from_env(
        {
            "RANKER_MAX_CANDIDATES": "200",
            "RANKER_RECENT_CLICK_BOOST": "1.8",
            "RANKER_AFFINITY_SCALING": "0",
            "RANKER_POPULARITY_WEIGHT_1H": "0.3",
            "RANKER_POPULARITY_FOR_ANONYMOUS": "true",
        }
    )
    assert settings.max_candidates == 200
    assert settings.boost == BoostSettings(
        recent_click_boost=1.8, affinity_scaling=False, popularity_weight_1h=0.3, popularity_for_anonymous=True
    )
    assert RankerSettings.from_env({}).boost == BoostSettings()
    with pytest.raises(ValueError, match="max_boost"):
        RankerSettings.from_env({"RANKER_MAX_BOOST": "0.5"})
    with pytest.raises(ValueError, match="RANKER_MAX_CANDIDATES"):
        RankerSettings.from_env({"RANKER_MAX_CANDIDATES": "0"})
