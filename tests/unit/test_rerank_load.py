"""The rerank cost model: the work in flight, and the cost of a call and of a pair learnt from finished calls."""

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


def test_a_call_sent_to_an_empty_queue_costs_its_time() -> None:
    clock = Clock()
    load = RerankLoad(smoothing=0.5, clock=clock)
    with load.call(100):
        assert (load.pairs_in_flight, load.calls_in_flight) == (100, 1)
        with load.call(50):  # queued behind the first 100: its time says how far they had got
            clock.now = 0.3
        assert load.seconds_per_pair is None
        clock.now = 0.4
    assert (load.pairs_in_flight, load.calls_in_flight) == (0, 0)
    # calls of one depth cannot tell a fixed part of a call from the pairs: all on the pairs
    assert (load.seconds_per_call, load.seconds_per_pair) == (0.0, pytest.approx(0.4 / 100))
    with load.call(100):
        clock.now = 0.6
    assert load.seconds_per_pair == pytest.approx(0.5 * 0.004 + 0.5 * 0.002)
    assert load.deviation == pytest.approx(0.5 * 0.2 / 0.4)  # 0.2 s against 0.4 predicted
    # plans count a call at its mean plus two deviations: calls on shared cores vary
    assert load.planned_seconds(100) == pytest.approx(0.3 * (1 + 2 * 0.25))
    assert load.affordable_pairs(0.3) == int(0.3 / (0.003 * 1.5))


def test_calls_of_different_depths_tell_the_fixed_part_of_a_call_from_the_pairs() -> None:
    # 12 ms a call and 0.6 ms a pair, as the 48-token reranker on 2 cores
    clock = Clock()
    load = RerankLoad(clock=clock)
    for pairs in [100, 20, 60, 100, 40, 100, 20, 80] * 4:
        with load.call(pairs):
            clock.now += 0.012 + 0.0006 * pairs
    assert load.seconds_per_call == pytest.approx(0.012, rel=0.05)
    assert load.seconds_per_pair == pytest.approx(0.0006, rel=0.02)
    assert load.deviation < 0.01
    for _ in range(30):  # then one depth only: the fixed part keeps its estimate
        with load.call(100):
            clock.now += 0.012 + 0.0006 * 100
    assert load.seconds_per_call == pytest.approx(0.012, rel=0.05)
    assert load.call_seconds(20) == pytest.approx(0.024, rel=0.05)
    # a shallow call no longer makes the pairs of a full one dearer
    with load.call(20):
        clock.now += 0.024
    assert load.call_seconds(100) == pytest.approx(0.072, rel=0.05)


def test_work_the_reranker_has_had_time_to_do_is_not_planned_for_again() -> None:
    clock = Clock()
    load = RerankLoad(clock=clock, seconds_per_pair=0.001)  # 1 ms a pair, no deviation
    with load.call(100):
        assert load.seconds_to_go() == pytest.approx(0.1) and load.affordable_pairs(0.24) == 140
        clock.now = 0.06  # 60 ms of its 100 done by now
        assert load.seconds_to_go() == pytest.approx(0.04) and load.affordable_pairs(0.24) == 200
        with load.call(50):  # queued behind them
            clock.now = 0.09
            assert load.seconds_to_go() == pytest.approx(0.06)  # 10 ms of the first call's left, and the 50
            clock.now = 0.1
        # the 50 answered (whichever order they ran in): 120 ms of work less those 50 ms
        clock.now = 0.12
        assert load.seconds_to_go() == pytest.approx(0.03)
        clock.now = 0.5  # slower than planned: never less than none
        assert load.seconds_to_go() == 0
    assert load.calls_in_flight == 0 and load.seconds_to_go() == 0
    with load.call(20):  # busy anew: nothing done yet (at the cost the slow call taught)
        assert load.seconds_to_go() == pytest.approx(load.planned_seconds(20))
    load = RerankLoad(seconds_per_pair=0.001, seconds_per_call=0.01, calls_in_flight=2, pairs_in_flight=100)
    assert load.seconds_to_go() == pytest.approx(0.12)  # two calls' fixed parts and their pairs
    assert load.affordable_pairs(0.24) == 110  # 240 ms less 120 queued less this call's 10


def test_a_queue_of_calls_is_planned_with_the_deviation_of_their_sum_not_of_each() -> None:
    # 1 ms a pair, calls off by half their prediction on average
    load = RerankLoad(seconds_per_pair=0.001, deviation=0.5)
    assert load.planned_seconds(100) == pytest.approx(0.1 * (1 + 2 * 0.5))  # alone: two deviations
    load = RerankLoad(seconds_per_pair=0.001, deviation=0.5, calls_in_flight=3, pairs_in_flight=300)
    # waiting for 4 calls (3 in flight and its own): their sum deviates by sqrt(4) x one call's
    assert load.margin(4) == pytest.approx(1 + 2 * 0.5 / 2)
    assert load.seconds_to_go(4) == pytest.approx(0.3 * 1.5)
    assert load.affordable_pairs(0.6) == 100  # (600 - 450 ms) / 1.5 ms; two deviations each would leave none
    assert load.seconds_to_go() == pytest.approx(0.3 * (1 + 2 * 0.5 / 3**0.5))  # the 3 alone


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


@pytest.mark.parametrize(("gap", "share"), [(0.35, 100), (0.3125, 100), (0.3, 48), (0.125, 40), (0.025, 20)])
def test_searches_the_reranker_keeps_up_with_take_full_depth_and_faster_ones_their_fair_share(
    gap: float, share: int
) -> None:
    # 100 pairs take 0.25 s (400 pairs a second): a search every 0.3125 s or slower still gets full depth
    # (the reranker busy 80 % of the time); faster, each gets at most 0.8 x 400 pairs a second over the
    # rate, and half of the 96 pairs that fit the budget (48); at 8 a second 0.8 x 400 / 8 = 40 pairs; at
    # 40 a second the floor (its share would be 8).
    load = RerankLoad(seconds_per_pair=0.0025, utilisation=0.8, mean_gap_s=gap, overlap=0.9)
    assert load.share(100, 20, 0.24) == share
    load.overlap = 0.4  # most searches found the reranker idle: nothing to share
    assert load.share(100, 20, 1.0) == 100


def test_the_arrival_rate_follows_the_gaps_between_searches_from_a_quiet_start() -> None:
    clock = Clock()
    load = RerankLoad(clock=clock, arrival_smoothing=0.5, seconds_per_pair=0.0025)
    for _ in range(3):  # a burst at start-up is not taken for a rate
        load.arrive()
    assert load.mean_gap_s == pytest.approx(0.25) and load.share(100, 20, 0.24) == 100
    for _ in range(20):  # one client in a closed loop: each search once the last was answered
        clock.now += 0.125
        load.arrive()
    assert load.mean_gap_s == pytest.approx(0.125) and load.overlap == 0 and load.share(100, 20, 0.24) == 100
    load.pairs_in_flight = 100
    for _ in range(20):  # searches arriving while others' pairs are in flight: they compete
        clock.now += 0.125
        load.arrive()
    assert load.overlap > 0.99 and load.share(100, 20, 0.24) == 40


def test_no_share_is_planned_before_the_cost_is_known() -> None:
    assert RerankLoad().share(100, 20, 1.0) is None


def test_competing_searches_take_at_most_half_of_what_fits_the_budget() -> None:
    load = RerankLoad(seconds_per_pair=0.0025, utilisation=0.8, mean_gap_s=0.2, overlap=0.9)
    # full depth 200 (0.5 s) never fits these budgets with the next search's floor
    assert load.share(200, 20, 0.4) == 64  # the fair share: 0.8 x 400 a second x 0.2 s
    assert load.share(200, 20, 0.24) == 48  # 96 pairs fit 0.24 s: half of them
    assert load.share(200, 20, 0.1) == 20  # never below the floor


def test_a_budget_that_holds_full_depth_and_the_next_floor_shares_nothing() -> None:
    load = RerankLoad(seconds_per_pair=0.0025, utilisation=0.8, mean_gap_s=0.05, overlap=0.9)
    assert load.share(100, 20, 2.0) == 100  # 800 pairs fit 2 s: competing searches all get full depth
    load.pairs_in_flight, load.calls_in_flight = 700, 7
    assert load.share(100, 20, 2.0) == 20  # not with 700 already queued
