from __future__ import annotations

import math

import pytest

from atelier.serving import popularity
from atelier.serving.article_index import filter_expression


def test_filter_expression_quotes_values_and_joins_fields() -> None:
    assert filter_expression({}) == ""
    assert filter_expression({"colour": ["Black", 'Say "hi"'], "product_type": ["Trousers"]}) == (
        'colour in ["Black", "Say \\"hi\\""] and product_type in ["Trousers"]'
    )
    with pytest.raises(ValueError, match="fabric"):
        filter_expression({"fabric": ["denim"]})


def test_windows_buckets_and_expiry() -> None:
    assert [(w.name, w.span_s) for w in popularity.WINDOWS] == [("1h", 3600), ("24h", 86400), ("7d", 604800)]
    t = 1_767_225_600 + 3 * 3600 + 17 * 60  # 03:17 on a day
    assert popularity.HOUR.bucket_key(t) == f"pop:1h:{t - 2 * 60}"
    assert popularity.DAY.bucket_start(t) == 1_767_225_600 + 3 * 3600
    # A bucket leaves the window one span after it closes.
    assert popularity.HOUR.expires_at(t) == popularity.HOUR.bucket_start(t) + 300 + 3600
    keys = popularity.DAY.active_keys(t)
    assert len(keys) == 24 and keys[0] == popularity.DAY.bucket_key(t)
    assert keys[-1] == popularity.DAY.key(popularity.DAY.bucket_start(t) - 23 * 3600)


def test_global_scores_decay_with_a_seven_day_half_life() -> None:
    click = popularity.GLOBAL_EPOCH_S + 10 * 86400
    stored = popularity.global_increment(click)
    assert popularity.global_score_at(stored, click) == pytest.approx(1.0)
    assert popularity.global_score_at(stored, click + 7 * 86400) == pytest.approx(0.5)
    assert math.isclose(popularity.decay_factor(14 * 86400), 0.25)
