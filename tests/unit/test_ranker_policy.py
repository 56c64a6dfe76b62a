from __future__ import annotations

import math

import pytest

from services.ranker.policy import BoostSettings, Candidate, Popularity, Ranked, UserBehaviour, rank

PLAIN = BoostSettings(affinity_scaling=False)
NOBODY = UserBehaviour()  # an identified user without history: ranked as anonymous
# Popularity alone, isolated from the personal factors.
POPULARITY_ONLY = BoostSettings(popularity_for_anonymous=True)


def _candidates(*scores: float, category: str = "") -> list[Candidate]:
    return [Candidate(f"a{i}", category, score) for i, score in enumerate(scores)]


def _by_id(ranked: list[Ranked]) -> dict[str, Ranked]:
    return {item.article_id: item for item in ranked}


def _ids(ranked: list[Ranked]) -> list[str]:
    return [item.article_id for item in ranked]


def test_recent_click_alone_is_x1_5() -> None:
    ranked = _by_id(rank(_candidates(2.0, 2.0), UserBehaviour(frozenset({"a1"})), {}, 0, BoostSettings()))
    assert ranked["a1"] == Ranked("a1", 3.0, 1.0, 1.5, personal=1.5, personal_signal="recent_click")
    assert ranked["a0"] == Ranked("a0", 2.0, 0.0, 1.0)


@pytest.mark.parametrize("affinity", [0.01, 1.0, 50.0])
def test_category_without_scaling_is_exactly_x1_2_for_any_positive_affinity(affinity: float) -> None:
    candidates = [Candidate("a0", "Trousers", 1.0), Candidate("a1", "Dress", 1.0)]
    ranked = _by_id(rank(candidates, UserBehaviour(category_affinities={"Trousers": affinity}), {}, 0, PLAIN))
    assert ranked["a0"].boost == 1.2
    assert ranked["a0"].score == 1.2
    assert ranked["a1"].boost == 1.0


@pytest.mark.parametrize(
    ("affinity", "boost"),
    [
        (1.5, 1 + 0.2 * 1.5 / 3.0),  # 1.1
        (0.3, 1 + 0.2 * 0.3 / 3.0),  # 1.02
        (3.0, 1.2),  # saturated
        (30.0, 1.2),  # never above the plain ceiling
        (0.0, 1.0),
        (-2.0, 1.0),
    ],
)
def test_scaled_category_factor_grows_with_affinity_up_to_1_2(affinity: float, boost: float) -> None:
    behaviour = UserBehaviour(category_affinities={"Trousers": affinity})
    [item] = rank([Candidate("a0", "Trousers", 2.0)], behaviour, {}, 0, BoostSettings())
    assert item.boost == pytest.approx(boost)
    assert item.score == pytest.approx(2.0 * boost)


def test_scaled_category_respects_the_saturation_setting() -> None:
    behaviour = UserBehaviour(category_affinities={"Trousers": 1.0})
    [item] = rank([Candidate("a0", "Trousers", 1.0)], behaviour, {}, 0, BoostSettings(affinity_saturation=2.0))
    assert item.boost == pytest.approx(1.1)


def test_empty_category_never_matches() -> None:
    behaviour = UserBehaviour(category_affinities={"": 5.0})
    [item] = rank([Candidate("a0", "", 1.0)], behaviour, {}, 0, BoostSettings())
    assert item.boost == 1.0


def test_popularity_factor_over_the_candidate_set() -> None:
    signals = {
        "a0": Popularity(p1h=3, p24h=10, p7d=0),
        "a1": Popularity(p1h=1, p24h=0, p7d=7),
        "a2": Popularity(p1h=2, p24h=4, p7d=1),
        "elsewhere": Popularity(p1h=1000, p24h=1000, p7d=1000),  # not a candidate: not in the maxima
    }
    ranked = _by_id(rank(_candidates(1.0, 1.0, 1.0, 1.0), NOBODY, signals, 0, POPULARITY_ONLY))
    # maxima over the set: 1h 3, 24h 10, 7d 7
    assert ranked["a0"].boost == pytest.approx(1 + 0.20 + 0.10)  # 1.3
    assert ranked["a1"].boost == pytest.approx(1 + 0.20 * math.log(2) / math.log(4) + 0.05)  # 1.15
    expected_a2 = (
        1
        + 0.20 * math.log1p(2) / math.log1p(3)
        + 0.10 * math.log1p(4) / math.log1p(10)
        + 0.05 * math.log1p(1) / math.log1p(7)
    )
    assert ranked["a2"].boost == pytest.approx(expected_a2)
    assert ranked["a3"].boost == 1.0  # no signals
    assert _ids(rank(_candidates(1.0, 1.0, 1.0, 1.0), NOBODY, signals, 0, POPULARITY_ONLY)) == ["a0", "a2", "a1", "a3"]


def test_a_window_whose_maximum_is_zero_adds_nothing() -> None:
    signals = {"a0": Popularity(0, 0, 0), "a1": Popularity(0, 0, 4)}
    ranked = _by_id(rank(_candidates(1.0, 1.0), NOBODY, signals, 0, POPULARITY_ONLY))
    assert ranked["a0"].boost == 1.0
    assert ranked["a1"].boost == pytest.approx(1.05)
    all_zero = rank(_candidates(1.0, 1.0), NOBODY, {"a0": Popularity(), "a1": Popularity()}, 0, POPULARITY_ONLY)
    assert [item.boost for item in all_zero] == [1.0, 1.0]


def test_recent_click_beats_category_without_double_counting() -> None:
    behaviour = UserBehaviour(frozenset({"a0"}), {"Trousers": 10.0})
    [item] = rank([Candidate("a0", "Trousers", 1.0)], behaviour, {}, 0, PLAIN)
    assert item.boost == 1.5  # not 1.5 * 1.2


def test_personal_and_popularity_factors_multiply() -> None:
    candidates = [Candidate("a0", "Dress", 1.0), Candidate("a1", "Trousers", 1.0), Candidate("a2", "Dress", 1.0)]
    behaviour = UserBehaviour(frozenset({"a0"}), {"Trousers": 2.0})
    signals = {"a0": Popularity(5, 5, 5), "a1": Popularity(5, 5, 5)}
    ranked = _by_id(rank(candidates, behaviour, signals, 0, PLAIN))
    assert ranked["a0"].boost == pytest.approx(1.5 * 1.35)  # 2.025: the defaults never reach the cap
    assert ranked["a1"].boost == pytest.approx(1.2 * 1.35)
    assert ranked["a2"].boost == 1.0


def test_each_item_says_what_its_boost_is_made_of() -> None:
    candidates = [Candidate("a0", "Dress", 1.0), Candidate("a1", "Trousers", 1.0), Candidate("a2", "Dress", 1.0)]
    behaviour = UserBehaviour(frozenset({"a0"}), {"Trousers": 2.0})
    signals = {"a0": Popularity(0, 5, 5), "a1": Popularity(8, 2, 0)}
    ranked = _by_id(rank(candidates, behaviour, signals, 0, PLAIN))
    assert (ranked["a0"].personal, ranked["a0"].personal_signal) == (1.5, "recent_click")
    assert (ranked["a1"].personal, ranked["a1"].personal_signal) == (1.2, "category_affinity")
    assert (ranked["a2"].personal, ranked["a2"].personal_signal, ranked["a2"].trending) == (1.0, "", None)
    # a0 is the set's most clicked in 24h (weight 0.10) and 7d (0.05); a1 in 1h (0.20) and less in 24h.
    assert (ranked["a0"].trending.window, ranked["a0"].trending.clicks) == ("24h", 5)
    assert ranked["a1"].trending.window == "1h" and ranked["a1"].trending.term == pytest.approx(0.20)
    for item in ranked.values():
        assert item.boost == pytest.approx(item.personal * item.popularity)


def test_an_anonymous_item_has_no_personal_signal_and_no_trending_window_unless_popularity_counts() -> None:
    signals = {"a0": Popularity(3, 0, 0)}
    [item] = rank(_candidates(1.0), None, signals, 0, BoostSettings())
    assert (item.personal_signal, item.popularity, item.trending) == ("", 1.0, None)
    [item] = rank(_candidates(1.0), None, signals, 0, POPULARITY_ONLY)
    assert item.trending is not None and item.trending.window == "1h" and item.popularity > 1


def test_total_factor_is_capped() -> None:
    settings = BoostSettings(recent_click_boost=2.5, max_boost=3.0)
    candidates = _candidates(2.0, 2.0)
    behaviour = UserBehaviour(frozenset({"a0", "a1"}))
    signals = {"a0": Popularity(9, 9, 9), "a1": Popularity(0, 0, 0)}
    ranked = _by_id(rank(candidates, behaviour, signals, 0, settings))
    assert ranked["a0"].boost == 3.0  # 2.5 * 1.35 = 3.375, capped
    assert ranked["a0"].score == 6.0
    assert ranked["a1"].boost == 2.5


def test_behaviour_score_is_final_minus_relevance_and_zero_when_unboosted() -> None:
    behaviour = UserBehaviour(frozenset({"a0"}))
    ranked = _by_id(rank(_candidates(0.8, 0.9), behaviour, {}, 0, BoostSettings()))
    assert ranked["a0"].score == pytest.approx(1.2)
    assert ranked["a0"].behaviour_score == pytest.approx(0.4)
    assert ranked["a1"].behaviour_score == 0.0
    assert ranked["a1"].score == 0.9


def test_ties_keep_the_input_order() -> None:
    # a2's 1.0 boosted to 1.2 ties a0 and a3's relevance 1.2: input order decides.
    candidates = [Candidate("a0", "", 1.2), Candidate("a1", "", 0.5), Candidate("a2", "Dress", 1.0)]
    candidates.append(Candidate("a3", "", 1.2))
    behaviour = UserBehaviour(category_affinities={"Dress": 1.0})
    ranked = rank(candidates, behaviour, {}, 0, PLAIN)
    assert [item.score for item in ranked] == [1.2, 1.2, 1.2, 0.5]
    assert _ids(ranked) == ["a0", "a2", "a3", "a1"]
    reversed_input = rank(candidates[::-1], behaviour, {}, 0, PLAIN)
    assert _ids(reversed_input) == ["a3", "a2", "a0", "a1"]


def test_boost_reorders_by_final_score() -> None:
    behaviour = UserBehaviour(frozenset({"a2"}))
    assert _ids(rank(_candidates(0.9, 0.8, 0.7), behaviour, {}, 0, BoostSettings())) == ["a2", "a0", "a1"]


@pytest.mark.parametrize(("k", "expected"), [(0, ["a1", "a0", "a2"]), (2, ["a1", "a0"]), (1, ["a1"]), (9, None)])
def test_k_returns_the_top_k_and_zero_returns_all(k: int, expected: list[str] | None) -> None:
    ranked = rank(_candidates(0.5, 0.9, 0.1), NOBODY, {}, k, BoostSettings())
    assert _ids(ranked) == (expected or ["a1", "a0", "a2"])


def test_k_applies_after_boosting_the_whole_set() -> None:
    behaviour = UserBehaviour(frozenset({"a2"}))
    assert _ids(rank(_candidates(0.9, 0.8, 0.7), behaviour, {}, 1, BoostSettings())) == ["a2"]


def test_anonymous_results_keep_the_relevance_order_with_factor_1() -> None:
    candidates = [Candidate("a0", "Dress", 0.9), Candidate("a1", "Dress", 0.9), Candidate("a2", "Dress", 0.4)]
    signals = {"a2": Popularity(100, 100, 100)}
    ranked = rank(candidates, None, signals, 0, BoostSettings())
    assert _ids(ranked) == ["a0", "a1", "a2"]
    assert all(item.boost == 1.0 and item.behaviour_score == 0.0 for item in ranked)
    assert [item.score for item in ranked] == [0.9, 0.9, 0.4]


def test_anonymous_popularity_is_opt_in_and_never_personal() -> None:
    candidates = _candidates(1.0, 1.0)
    ranked = _by_id(
        rank(candidates, None, {"a1": Popularity(3, 0, 0)}, 0, BoostSettings(popularity_for_anonymous=True))
    )
    assert ranked["a1"].boost == pytest.approx(1.2)
    assert ranked["a0"].boost == 1.0


def test_identified_user_without_behaviour_data_is_unpersonalised() -> None:
    ranked = rank(_candidates(0.3, 0.7, 0.7), NOBODY, {}, 0, BoostSettings())
    assert _ids(ranked) == ["a1", "a2", "a0"]
    assert all(item.boost == 1.0 and item.behaviour_score == 0.0 for item in ranked)


def test_negative_scores_are_raised_towards_zero_never_lowered() -> None:
    behaviour = UserBehaviour(frozenset({"a0", "a2"}))
    ranked = _by_id(rank(_candidates(-3.0, -2.5, 2.0, -1.0), behaviour, {}, 0, BoostSettings()))
    assert ranked["a0"].score == pytest.approx(-2.0)  # -3 / 1.5
    assert ranked["a0"].behaviour_score == pytest.approx(1.0)
    assert ranked["a2"].score == pytest.approx(3.0)
    # A boosted result never ranks below an unboosted one of the same relevance.
    same = rank(
        [Candidate("plain", "", -2.0), Candidate("clicked", "", -2.0)],
        UserBehaviour(frozenset({"clicked"})),
        {},
        0,
        BoostSettings(),
    )
    assert _ids(same) == ["clicked", "plain"]
    # Equal boosts keep the relevance order across zero.
    all_clicked = UserBehaviour(frozenset({"a0", "a1", "a2", "a3"}))
    assert _ids(rank(_candidates(-3.0, -2.5, 2.0, -1.0), all_clicked, {}, 0, BoostSettings())) == [
        "a2",
        "a3",
        "a1",
        "a0",
    ]


def test_no_candidates() -> None:
    assert rank([], UserBehaviour(frozenset({"a0"})), {}, 5, BoostSettings()) == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"recent_click_boost": 0.9},
        {"category_boost": 0.5},
        {"max_boost": 0.99},
        {"popularity_weight_1h": -0.1},
        {"affinity_saturation": 0.0},
        {"popularity_weight_7d": float("nan")},
    ],
)
def test_settings_that_could_lower_a_result_are_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        BoostSettings(**kwargs)


def test_tiny_popularity_counts_stay_finite() -> None:
    signals = {"a0": Popularity(5e-324, 0, 0)}
    ranked = _by_id(rank(_candidates(1.0, 1.0), NOBODY, signals, 0, POPULARITY_ONLY))
    assert ranked["a0"].boost == pytest.approx(1.2)
    assert ranked["a1"].boost == 1.0


def test_a_user_without_behaviour_data_is_unpersonalised_even_with_popular_candidates() -> None:
    signals = {"a0": Popularity(1, 1, 1), "a1": Popularity(9, 9, 9)}
    ranked = rank(_candidates(0.9, 0.5), NOBODY, signals, 0, BoostSettings())
    assert _ids(ranked) == ["a0", "a1"]
    assert all(item.boost == 1.0 and item.behaviour_score == 0.0 for item in ranked)
