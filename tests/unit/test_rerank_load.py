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
