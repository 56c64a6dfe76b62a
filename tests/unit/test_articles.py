"""The article's fields come from fashion.v1.Article's descriptor, for every place that lists them."""

from __future__ import annotations

import dataclasses

from atelier.offline.catalog.schema import Article
from atelier.serving import article_index, articles, item_store
from fashion.v1 import article_pb2


def test_fields_filters_and_display_fields_follow_the_proto() -> None:
    proto_fields = [field.name for field in article_pb2.Article.DESCRIPTOR.fields]
    assert [articles.ID_FIELD, *articles.FIELDS] == proto_fields
    assert articles.FILTERS == {
        "product_groups": "product_group",
        "product_types": "product_type",
        "colours": "colour",
        "departments": "department",
        "index_groups": "index_group",
        "garment_groups": "garment_group",
    }
    assert articles.DISPLAY_FIELDS == ("name", "description")


def test_the_milvus_rows_the_redis_items_and_the_catalogue_record_hold_the_same_fields() -> None:
    assert set(article_index.OUTPUT_FIELDS) == set(articles.FIELDS)
    assert set(item_store.ITEM_FIELDS) == {*articles.FIELDS, "category"}
    assert [field.name for field in dataclasses.fields(Article)] == [articles.ID_FIELD, *articles.FIELDS]
    assert article_index.max_length("colour") == 128
    assert article_index.max_length("name") == 256
    assert article_index.max_length("description") == 2048


def test_the_passage_reads_every_attribute_once_in_a_stable_order() -> None:
    fields = {
        "name": "Slim Jeans",
        "product_type": "Trousers",
        "product_group": "Garment Lower body",
        "colour": "Black",
        "department": "Trousers",  # repeats the type: left out
        "index_group": "Divided",
        "garment_group": "Trousers Denim",
        "description": "Five-pocket jeans.",
    }
    text = "Slim Jeans. Black Trousers, Garment Lower body, Divided, Trousers Denim. Five-pocket jeans."
    assert articles.passage(fields) == text
    assert Article.from_fields("0000000001", fields).text() == text
    assert articles.article_message("0000000001", fields) == article_pb2.Article(article_id="0000000001", **fields)
