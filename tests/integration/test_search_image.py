"""Image and hybrid search through Envoy, against the real stack with the session's CLIP model.

Query photos are Fashion-MNIST's held-out test split, rendered as catalogue photos: no catalogue
photo was drawn from them. The session's CLIP model trains for under a minute on the test
catalogue's ~1,100 photos: it tells trousers from the rest reliably (10 of 10 for these photos),
other classes only sometimes; the full model's per-class precision is `atelier eval`'s
(docs/performance.md).
"""

from __future__ import annotations

import base64
import io
import time
import uuid
from collections import Counter

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from PIL import Image

from atelier.edge.client import edge_channel
from atelier.offline.catalog.article_images import CLASS_TYPES, TYPE_CLASSES, held_out_images
from atelier.offline.evaluation.photos import encode
from atelier.stack.launcher import Stack
from fashion.v1 import search_service_pb2 as pb
from fashion.v1 import search_service_pb2_grpc as pb_grpc
from tests.integration.support.edge import call, search

TROUSER, DRESS, BAG = 1, 3, 8


def photo(label: int, colour: str = "Black", nth: int = 0, image_format: str = "PNG") -> bytes:
    images, labels = held_out_images()
    return encode(images[np.flatnonzero(labels == label)[nth]], colour, image_format)


def encoded(data: bytes) -> str:
    return base64.b64encode(data).decode()


def classes(body: dict) -> list[int | None]:
    return [TYPE_CLASSES.get(result["article"]["productType"]) for result in body["results"]]


def violations(body: dict) -> dict[str, str]:
    return {
        violation["field"]: violation["description"]
        for detail in body.get("details", [])
        for violation in detail.get("fieldViolations", [])
    }


@pytest.mark.parametrize("nth", [0, 1])
def test_image_search_returns_the_garment_class_of_a_held_out_photo(catalog: int, stack: Stack, nth: int) -> None:
    label = TROUSER
    status, body = call(stack, "POST", "/v1/search:image", {"image": encoded(photo(label, nth=nth)), "k": 10})
    assert status == 200, body
    assert not body.get("degradations"), body["degradations"]
    found = classes(body)
    assert len(found) == 10
    share = found.count(label) / len(found)
    assert share >= 0.6, f"{CLASS_TYPES[label]}: {Counter(found)}"
    assert [result["rank"] for result in body["results"]] == list(range(1, 11))
    assert {"clip_image", "ann_image"} <= {timing["stage"] for timing in body["timings"]}
    assert all("rerankScore" not in result for result in body["results"])  # no query text to rerank by


def test_image_search_over_grpc_with_a_filter_and_jpeg(catalog: int, stack: Stack) -> None:
    with edge_channel(stack.endpoints.edge_grpc_address) as channel:
        reply = pb_grpc.SearchServiceStub(channel).SearchImage(
            pb.SearchImageRequest(
                image=photo(DRESS, "Red", image_format="JPEG"), k=5, filter={"colours": ["Red", "Dark Red"]}
            ),
            timeout=30,
        )
    assert 0 < len(reply.results) <= 5
    assert {result.article.colour for result in reply.results} <= {"Red", "Dark Red"}


def _too_many_pixels() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (2100, 2000), (200, 200, 200)).save(buffer, format="PNG")  # 4.2 Mpixel, a few KB
    return buffer.getvalue()


def _gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 0, 0)).save(buffer, format="GIF")
    return buffer.getvalue()


BAD_PHOTOS = {
    "empty": (b"", "must not be empty"),
    "not an image": (b"this is not a photo of trousers", "not a JPEG, PNG or WebP image"),
    "gif": (_gif(), "not a JPEG, PNG or WebP image"),
    "truncated": (photo(BAG, image_format="JPEG")[:600], "could not be decoded"),
    "too large": (b"\xff\xd8" + bytes(1_100_000), "at most 1048576 bytes"),
    "too many pixels": (_too_many_pixels(), "at most 4000000 pixels"),
}


@pytest.mark.parametrize("case", list(BAD_PHOTOS))
def test_a_bad_photo_is_400_naming_the_problem(catalog: int, stack: Stack, case: str) -> None:
    data, problem = BAD_PHOTOS[case]
    for path, body in (
        ("/v1/search:image", {"image": encoded(data)}),
        ("/v1/search:hybrid", {"query": "black trousers", "image": encoded(data)} if data else None),
    ):
        if body is None:
            continue  # hybrid's photo is optional: empty means none
        status, reply = call(stack, "POST", path, body)
        assert status == 400, (path, reply)
        assert reply["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert problem in violations(reply).get("image", ""), (path, reply)


def test_invalid_base64_is_400(catalog: int, stack: Stack) -> None:
    status, reply = call(stack, "POST", "/v1/search:image", {"image": "%%% not base64 %%%"})
    assert status == 400, reply


def test_hybrid_search_merges_text_and_image_recall(catalog: int, stack: Stack) -> None:
    status, body = call(
        stack, "POST", "/v1/search:hybrid", {"query": "black trousers", "image": encoded(photo(TROUSER)), "k": 10}
    )
    assert status == 200, body
    assert not body.get("degradations"), body["degradations"]
    assert classes(body).count(TROUSER) >= 6
    stages = {timing["stage"] for timing in body["timings"]}
    assert {"clip_text", "clip_image", "merge"} <= stages and stages & {"embed", "embed_cached"}

    status, body = call(stack, "POST", "/v1/search:hybrid", {"query": "red dress", "k": 5})  # no photo
    assert status == 200 and len(body["results"]) == 5 and not body.get("degradations"), body


def _set_loaded(stack: Stack, model: str, loaded: bool) -> None:
    client = triton.InferenceServerClient(stack.endpoints.triton_address)
    try:
        if loaded:
            client.load_model(model)
        else:
            client.unload_model(model)
    finally:
        client.close()


def _until_healthy(stack: Stack, timeout_s: float = 90.0) -> None:
    """Until a text and a hybrid search answer undegraded again (breakers closed)."""
    deadline = time.monotonic() + timeout_s
    while True:
        _, text = search(stack, query="blue jeans")
        _, hybrid = call(stack, "POST", "/v1/search:hybrid", {"query": "blue jeans", "image": encoded(photo(BAG))})
        if not text.get("degradations") and not hybrid.get("degradations") and hybrid.get("results"):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"still degraded after {timeout_s:.0f}s: {text} {hybrid}")
        time.sleep(1)


@pytest.mark.parametrize(
    ("unloaded", "lost_sides", "answered_by"),
    [
        (("text_embedding",), {"hybrid_without_text"}, "image"),
        (("clip_image", "clip_text"), {"hybrid_without_clip_text", "hybrid_without_image"}, "text"),
    ],
)
def test_hybrid_answers_when_one_side_fails_and_says_which(
    catalog: int, stack: Stack, unloaded: tuple[str, ...], lost_sides: set[str], answered_by: str
) -> None:
    query = f"black trousers {uuid.uuid4().hex[:6]}"  # never seen: no cached query embedding to answer from
    for model in unloaded:
        _set_loaded(stack, model, False)
    try:
        status, body = call(
            stack, "POST", "/v1/search:hybrid", {"query": query, "image": encoded(photo(TROUSER, nth=1)), "k": 10}
        )
    finally:
        for model in unloaded:
            _set_loaded(stack, model, True)
    assert status == 200, body
    assert len(body["results"]) == 10
    assert {d["fallback"] for d in body["degradations"]} == lost_sides, body["degradations"]
    assert all(d["detail"].split(" recall failed")[0] in {"text", "clip_text", "image"} for d in body["degradations"])
    if answered_by == "image":
        assert classes(body).count(TROUSER) >= 6
    _until_healthy(stack)
