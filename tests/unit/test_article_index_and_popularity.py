from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from pymilvus import MilvusClient

from atelier.serving import popularity
from atelier.serving.article_index import IndexSettings, create_collection, filter_expression
from atelier.serving.settings import CollectionLayout


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
    assert popularity.HOUR.bucket_start(t) == t - 2 * 60
    assert popularity.DAY.bucket_start(t) == 1_767_225_600 + 3 * 3600
    # A bucket leaves the window one span after it closes.
    assert popularity.HOUR.expires_at(t) == popularity.HOUR.bucket_start(t) + 300 + 3600
    starts = popularity.DAY.active_starts(t)
    assert len(starts) == 24 and starts[0] == popularity.DAY.bucket_start(t)
    assert starts[-1] == popularity.DAY.bucket_start(t) - 23 * 3600


def test_global_scores_decay_with_a_seven_day_half_life() -> None:
    click = popularity.GLOBAL_EPOCH_S + 10 * 86400
    stored = popularity.global_increment(click)
    assert popularity.global_score_at(stored, click) == pytest.approx(1.0)
    assert popularity.global_score_at(stored, click + 7 * 86400) == pytest.approx(0.5)
    assert math.isclose(popularity.decay_factor(14 * 86400), 0.25)


class RecordingMilvus:
    """The MilvusClient calls create_collection makes, recorded."""

    prepare_index_params = staticmethod(MilvusClient.prepare_index_params)

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, object]]] = []

    def __getattr__(self, method: str) -> Callable[..., None]:  # any client method, recorded
        return lambda name, *args, **kwargs: self.calls.append((method, name, kwargs))


@pytest.mark.parametrize(
    ("environment", "create", "load"),
    [
        ({}, {}, {"replica_number": 1}),  # standalone: Milvus' default shards, one replica
        (
            {"ATELIER_MILVUS_SHARDS": "2", "ATELIER_MILVUS_REPLICAS": "2"},
            {"num_shards": 2},
            {"replica_number": 2},
        ),
    ],
)
def test_a_new_collection_gets_the_configured_shards_and_replicas(
    environment: dict[str, str], create: dict[str, object], load: dict[str, object]
) -> None:
    client = RecordingMilvus()
    settings = IndexSettings(layout=CollectionLayout.from_env(environment))
    create_collection(client, settings, dimension=4, model="m")  # type: ignore[arg-type]
    (made, indexed, loaded) = client.calls
    assert made[0] == "create_collection" and {k: v for k, v in made[2].items() if k != "schema"} == create
    assert indexed[:2] == ("create_index", settings.collection)
    assert loaded == ("load_collection", settings.collection, load)
