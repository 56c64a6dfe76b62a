from __future__ import annotations

import pytest

from atelier.serving.rpc import FieldViolation, InvalidArgument
from fashion.v1 import article_pb2
from fashion.v1 import search_service_pb2 as pb
from services.search.config import RequestLimits
from services.search.image_validation import CheckedImage
from services.search.validation import validate_request

KNOWN = {"colour": {"black": "Black", "dark blue": "Dark Blue"}, "product_type": {"trousers": "Trousers"}}


def _validate(
    query: str = "jeans", k: int = 0, user_id: str = "", known=KNOWN, explain_top: int = 0, **filters: list[str]
):
    request = pb.SearchTextRequest(
        query=query, k=k, user_id=user_id, filter=article_pb2.ArticleFilter(**filters), explain_top=explain_top
    )
    return validate_request(request, RequestLimits(default_k=10, max_k=100, max_query_chars=50), known)


def _fields(error: pytest.ExceptionInfo[InvalidArgument]) -> list[str]:
    return [v.field for v in error.value.violations]


def test_normalises_whitespace_defaults_k_and_canonicalises_filter_values() -> None:
    query = _validate("  black   jeans ", colours=["BLACK", "dark blue"], product_types=["trousers"])
    assert query.query == "black jeans"
    assert query.k == 10
    assert query.filters == {"colour": ["Black", "Dark Blue"], "product_type": ["Trousers"]}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"query": ""}, "query"),
        ({"query": " \t "}, "query"),
        ({"query": "x" * 51}, "query"),
        ({"k": 101}, "k"),
        ({"k": -3}, "k"),
        ({"user_id": "u" * 129}, "user_id"),
        ({"colours": ["Ultraviolet"]}, "filter.colours"),
        ({"colours": [""]}, "filter.colours"),
        ({"departments": ["x"] * 51}, "filter.departments"),
        ({"explain_top": 11}, "explain_top"),
        ({"explain_top": -1}, "explain_top"),
    ],
)
def test_each_problem_names_its_field(kwargs: dict, field: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        _validate(**kwargs)
    assert _fields(error) == [field]


def test_reports_every_problem_at_once() -> None:
    with pytest.raises(InvalidArgument) as error:
        _validate("", k=1000, colours=["nope"])
    assert _fields(error) == ["query", "k", "filter.colours"]
    assert "query: must not be empty" in str(error.value)


def test_explain_top_is_taken_as_asked() -> None:
    assert _validate().explain_top == 0
    assert _validate(explain_top=10).explain_top == 10


def test_unknown_catalogue_values_pass_unchecked() -> None:
    assert _validate(known=None, colours=["Ultraviolet"]).filters == {"colour": ["Ultraviolet"]}


PHOTO = CheckedImage(b"jpeg bytes", "JPEG", 64, 64)
BAD_PHOTO = FieldViolation("image", "is not a JPEG, PNG or WebP image")
LIMITS = RequestLimits(default_k=10, max_k=100, max_query_chars=50)


def validate_image_request(photo, k, user_id, article_filter, **_):
    request = pb.SearchImageRequest(k=k, user_id=user_id, filter=article_filter)
    return validate_request(request, LIMITS, KNOWN, photo)


def validate_hybrid_request(query, photo, k, user_id, article_filter, **_):
    request = pb.SearchHybridRequest(query=query, k=k, user_id=user_id, filter=article_filter)
    return validate_request(request, LIMITS, KNOWN, photo)


def test_image_request_carries_the_checked_photo() -> None:
    query = validate_image_request(PHOTO, 0, "u1", article_pb2.ArticleFilter(colours=["black"]))
    assert (query.image, query.k, query.user_id, query.filters) == (b"jpeg bytes", 10, "u1", {"colour": ["Black"]})


def test_image_request_reports_the_photo_with_every_other_problem() -> None:
    with pytest.raises(InvalidArgument) as error:
        validate_image_request(BAD_PHOTO, 101, "", article_pb2.ArticleFilter(colours=["plaid"]))
    assert _fields(error) == ["image", "k", "filter.colours"]
    assert "not a JPEG, PNG or WebP image" in str(error.value)


def test_hybrid_request_needs_a_query_and_takes_an_optional_photo() -> None:
    assert validate_hybrid_request("red dress", None, 5, "", article_pb2.ArticleFilter()).image is None
    with_photo = validate_hybrid_request(" red  dress ", PHOTO, 5, "", article_pb2.ArticleFilter())
    assert (with_photo.query, with_photo.image) == ("red dress", b"jpeg bytes")
    with pytest.raises(InvalidArgument) as error:
        validate_hybrid_request("", BAD_PHOTO, 5, "", article_pb2.ArticleFilter())
    assert _fields(error) == ["query", "image"]
