"""Builds the fashion.v1.Article message from an article's stored fields (Milvus row or Redis hash)."""

from __future__ import annotations

from collections.abc import Mapping

from fashion.v1 import article_pb2

ARTICLE_FIELDS = (
    "name",
    "product_type",
    "product_group",
    "colour",
    "department",
    "index_group",
    "garment_group",
    "description",
)


def article_message(article_id: str, fields: Mapping[str, str]) -> article_pb2.Article:
    return article_pb2.Article(article_id=article_id, **{f: fields.get(f, "") for f in ARTICLE_FIELDS})
