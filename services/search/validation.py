"""Validation of the three search requests: every problem found, each naming its field.

SearchTextRequest, SearchImageRequest and SearchHybridRequest share their k, user_id and filter
fields; a request with a `query` field must have a query. The photo is checked beforehand
(services/search/image_validation.py, off the event loop) and its verdict passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from atelier.serving.articles import FILTERS
from atelier.serving.ids import id_problem
from atelier.serving.rpc import FieldViolation, InvalidArgument
from fashion.v1 import article_pb2
from fashion.v1 import search_service_pb2 as pb
from services.search.config import RequestLimits
from services.search.image_validation import CheckedImage

MAX_FILTER_VALUES = 50
# attribute -> {lower-cased value: canonical value}; None while the catalogue's values are unknown.
KnownValues = Mapping[str, Mapping[str, str]] | None
SearchRequest = pb.SearchTextRequest | pb.SearchImageRequest | pb.SearchHybridRequest


@dataclass(frozen=True)
class SearchQuery:
    """A valid search: `query` is empty for image search, `image` None without a photo."""

    query: str
    image: bytes | None
    k: int
    user_id: str
    filters: dict[str, list[str]]
    explain_top: int = 0  # how many of the top results carry an explanation


def validate_request(
    request: SearchRequest,
    limits: RequestLimits,
    known_values: KnownValues,
    image: CheckedImage | FieldViolation | None = None,
) -> SearchQuery:
    """The request as a SearchQuery; InvalidArgument naming every bad field otherwise."""
    violations: list[FieldViolation] = []
    if isinstance(request, pb.SearchImageRequest):
        text = ""  # a photo is the whole query
    else:
        text = _query_text(request.query, limits.max_query_chars, violations)
    photo = None if image is None else _image(image, violations)
    k = validate_k(request.k, limits.default_k, limits.max_k, violations)
    user_id = _user_id(request.user_id, violations)
    filters = validate_filter(request.filter, known_values, violations)
    explain_top = _explain_top(request.explain_top, limits.max_explain_top, violations)
    if violations:
        raise InvalidArgument(violations)
    return SearchQuery(text, photo, k, user_id, filters, explain_top)


def validate_k(k: int, default_k: int, max_k: int, violations: list[FieldViolation]) -> int:
    if k == 0:
        return default_k
    if not 1 <= k <= max_k:
        violations.append(FieldViolation("k", f"must be between 1 and {max_k}, got {k}"))
    return k


def validate_filter(
    article_filter: article_pb2.ArticleFilter, known_values: KnownValues, violations: list[FieldViolation]
) -> dict[str, list[str]]:
    """Maps the filter onto attribute -> canonical values; values match case-insensitively.

    With `known_values` None (the catalogue's values are not known right now) values pass
    through unchecked rather than failing search.
    """
    filters: dict[str, list[str]] = {}
    for field, attribute in FILTERS.items():
        values = list(getattr(article_filter, field))
        if not values:
            continue
        if len(values) > MAX_FILTER_VALUES:
            violations.append(FieldViolation(f"filter.{field}", f"at most {MAX_FILTER_VALUES} values"))
            continue
        canonical = []
        for value in values:
            if not value.strip():
                violations.append(FieldViolation(f"filter.{field}", "values must not be empty"))
            elif known_values is None:
                canonical.append(value.strip())
            elif (match := known_values.get(attribute, {}).get(value.strip().lower())) is not None:
                canonical.append(match)
            else:
                violations.append(FieldViolation(f"filter.{field}", f"unknown value {value!r}"))
        filters[attribute] = canonical
    return filters


def _query_text(query: str, max_query_chars: int, violations: list[FieldViolation]) -> str:
    text = " ".join(query.split())
    if not text:
        violations.append(FieldViolation("query", "must not be empty"))
    elif len(text) > max_query_chars:
        violations.append(FieldViolation("query", f"must be at most {max_query_chars} characters, got {len(text)}"))
    return text


def _explain_top(n: int, max_explain_top: int, violations: list[FieldViolation]) -> int:
    if not 0 <= n <= max_explain_top:
        violations.append(FieldViolation("explain_top", f"must be between 0 and {max_explain_top}, got {n}"))
    return n


def _user_id(user_id: str, violations: list[FieldViolation]) -> str:
    """Empty for an anonymous search; otherwise an id (atelier.serving.ids), as it names Redis keys."""
    problem = id_problem(user_id, required=False)
    if problem:
        violations.append(FieldViolation("user_id", problem))
    return user_id


def _image(checked: CheckedImage | FieldViolation, violations: list[FieldViolation]) -> bytes:
    if isinstance(checked, FieldViolation):
        violations.append(checked)
        return b""
    return checked.data
