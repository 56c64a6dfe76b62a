"""The rerank cost model: pairs in flight, and the cost of a pair learnt from finished calls."""

from __future__ import annotations

import pytest

from atelier.serving.dependency import DependencyError, Failure
from services.search.rerank_load import RerankLoad


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_nothing_is_unaffordable_until_a_call_has_been_measured() -> None:
    assert RerankLoad().affordable_pairs(0.3) is None


def test_a_call_sent_to_an_empty_queue_costs_its_time_over_its_pairs() -> None:
    clock = Clock()
    load = RerankLoad(smoothing=0.5, clock=clock)
    with load.call(100):
        assert load.pairs_in_flight == 100
        with load.call(50):  # queued behind the first 100: its time says how far they had got
            clock.now = 0.3
        assert load.seconds_per_pair is None
        clock.now = 0.4
    assert load.pairs_in_flight == 0
    assert load.seconds_per_pair == pytest.approx(0.4 / 100)
    with load.call(100):
        clock.now = 0.6
    assert load.seconds_per_pair == pytest.approx(0.5 * 0.004 + 0.5 * 0.002)
    assert load.deviation == pytest.approx(0.5 * 0.002)
    # plans count a pair at the mean plus two deviations: calls on shared cores vary
    assert load.planned_seconds_per_pair == pytest.approx(0.003 + 2 * 0.001)
    assert load.affordable_pairs(0.3) == int(0.3 / load.planned_seconds_per_pair)


def test_a_timeout_counts_its_budget_a_failure_or_cancellation_counts_nothing() -> None:
    clock = Clock()
    load = RerankLoad(smoothing=1.0, clock=clock)
    with pytest.raises(DependencyError), load.call(10):
        clock.now = 0.3
        raise DependencyError("reranker", Failure.TIMED_OUT, "over budget")
    assert load.seconds_per_pair == pytest.approx(0.03)
    for error in (DependencyError("reranker", Failure.UNAVAILABLE, "down"), KeyboardInterrupt()):
        with pytest.raises(type(error)), load.call(10):
            clock.now += 5
            raise error
    assert load.seconds_per_pair == pytest.approx(0.03) and load.pairs_in_flight == 0


def test_a_search_alone_takes_full_depth_and_searches_arriving_often_their_fair_share() -> None:
    clock = Clock()
    load = RerankLoad(seconds_per_pair=0.0025, clock=clock, utilisation=0.8)  # 320 pairs a second to share
    assert load.share(100, 20, 0.24) == 100  # idle: the bucket holds a budget's worth (96 < 100: 100)
    load.arrive()
    load.take(100)
    for _ in range(40):  # 8 searches a second, evenly
        clock.now += 0.125
        load.arrive()
        share = load.share(100, 20, 0.24)
        load.take(share)
    assert load.mean_gap_s == pytest.approx(0.125)
    assert share == int(320 * 0.125)  # 40 pairs each: what the reranker can give every search
    clock.now += 2.0  # quiet for a while: the bucket is full again
    assert load.share(100, 20, 0.24) == 100


def test_under_overload_some_searches_get_the_floor_rather_than_all_a_useless_depth() -> None:
    clock = Clock()
    load = RerankLoad(seconds_per_pair=0.0025, clock=clock, utilisation=0.8)
    load.share(100, 20, 0.24)
    load.take(100)
    shares = []
    for _ in range(300):  # 40 searches a second: 8 pairs each would be the fair share
        clock.now += 0.025
        load.arrive()
        share = load.share(100, 20, 0.24)
        if share >= 20:
            load.take(share)
        shares.append(share)
    granted = [share for share in shares[100:] if share >= 20]
    assert set(granted) == {20}
    assert len(granted) / 200 == pytest.approx(320 / 40 / 20, abs=0.05)  # 40 % at the floor, the rest shed


def test_no_share_is_planned_before_the_cost_is_known() -> None:
    assert RerankLoad().share(100, 20, 0.24) is None
