"""Article photos through the API: GET /v1/articles/{article_id}/photo through Envoy (the image itself, from
the folder the catalogue load recorded), 404 for an article without one, 400 naming the field for a bad id."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import grpc
import pytest

from atelier.edge.client import edge_channel, key_headers
from atelier.offline.catalog.hm_loader import HMDataset
from atelier.stack.launcher import Stack
from fashion.v1 import search_service_pb2, search_service_pb2_grpc
from services.search.servicer import PHOTO_CACHE_CONTROL


def _get(stack: Stack, path: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(stack.endpoints.edge_url + path, headers=key_headers())
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def test_an_articles_photo_is_its_catalogue_file(
    stack: Stack, catalog: int, catalog_dataset: HMDataset, article_ids: list[str]
) -> None:
    with_photo = next(a for a in article_ids if (path := catalog_dataset.image_path(a)) and path.is_file())
    status, headers, body = _get(stack, f"/v1/articles/{with_photo.lstrip('0')}/photo")  # zeros may be left out
    assert status == 200, body[:300]
    assert headers["content-type"] == "image/jpeg" and headers["cache-control"] == PHOTO_CACHE_CONTROL
    assert body == catalog_dataset.image_path(with_photo).read_bytes() and body[:2] == b"\xff\xd8"
    with edge_channel(stack.endpoints.edge_grpc_address) as channel:
        search = search_service_pb2_grpc.SearchServiceStub(channel)
        reply = search.GetArticlePhoto(search_service_pb2.GetArticlePhotoRequest(article_id=with_photo), timeout=15)
    assert reply.content_type == "image/jpeg" and reply.data == body


@pytest.mark.parametrize(("article_id", "status"), [("0999999999", 404), ("not-an-id", 400)])
def test_no_photo_is_404_and_a_bad_id_400(stack: Stack, catalog: int, article_id: str, status: int) -> None:
    answered, _, body = _get(stack, f"/v1/articles/{article_id}/photo")
    assert answered == status, body[:300]
    error = json.loads(body)
    if status == 400:
        fields = [v["field"] for d in error.get("details", []) for v in d.get("fieldViolations", [])]
        assert fields == ["article_id"], error
    else:
        assert "no photo" in error["message"]
    with edge_channel(stack.endpoints.edge_grpc_address) as channel, pytest.raises(grpc.RpcError) as raised:
        search = search_service_pb2_grpc.SearchServiceStub(channel)
        search.GetArticlePhoto(search_service_pb2.GetArticlePhotoRequest(article_id=article_id), timeout=15)
    expected = grpc.StatusCode.NOT_FOUND if status == 404 else grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.code() == expected
