"""The evaluation's vision section: query photos, precision maths, query building, hybrid stage, report."""

from __future__ import annotations

import io
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image

from atelier.offline.catalog.article_images import CLASS_TYPES, COLOUR_RGB
from atelier.offline.catalog.schema import Article
from atelier.offline.evaluation import client as stack_client
from atelier.offline.evaluation import report, vision
from atelier.offline.evaluation.client import Ranked
from atelier.offline.evaluation.photos import QueryPhoto, choose_photos, encode
from atelier.offline.evaluation.queries import AttributeQuery
from atelier.offline.evaluation.relevance import ALL, evaluate_queries
from atelier.offline.evaluation.stages import ANN, HYBRID, PERSONALISED, RERANK, StageTable, score
from fashion.v1 import article_pb2, search_service_pb2

TROUSER, DRESS, BAG = 1, 3, 8


def _article(article_id: str, product_type: str, colour: str) -> Article:
    return Article(article_id, f"{colour} {product_type}", product_type, "Group", colour, "Dept", "Ladieswear", "G")


def _ranked(ids: list[str], types: list[str] | None = None, degraded: bool = False) -> Ranked:
    return Ranked(
        final=ids,
        retrieval=list(reversed(ids)),
        reranked=True,
        personalised=False,
        scores=[1.0] * len(ids),
        degradations=["reranker: DOWNSTREAM_TIMEOUT"] if degraded else [],
        product_types=types or [],
    )


def test_query_photos_are_seeded_per_class_and_coloured() -> None:
    labels = np.repeat(np.arange(10), 30)
    photos = choose_photos(labels, 5, seed=3)
    assert photos == choose_photos(labels, 5, seed=3)
    assert photos != choose_photos(labels, 5, seed=4)
    assert len(photos) == 5 * len(CLASS_TYPES)
    assert all(labels[p.index] == p.label and p.colour in COLOUR_RGB for p in photos)
    assert {p.label for p in photos} == set(CLASS_TYPES)
    assert len({p.index for p in photos}) == len(photos)
    assert len(choose_photos(labels, 100, seed=3)) == 30 * len(CLASS_TYPES)  # no more than a class has


def test_a_query_photo_is_a_decodable_catalogue_style_png() -> None:
    garment = np.zeros((28, 28), np.uint8)
    garment[4:24, 8:20] = 200
    data = encode(garment, "Red")
    with Image.open(io.BytesIO(data)) as image:
        assert (image.format, image.size, image.mode) == ("PNG", (64, 64), "RGB")
        centre = image.getpixel((32, 32))
    assert centre[0] > 150 and centre[1] < 80  # the garment is red


def test_precision_counts_missing_places_as_misses() -> None:
    assert vision.precision_at_k([True, False, True], k=10) == pytest.approx(0.2)
    assert vision.precision_at_k([True] * 12, k=10) == 1.0
    types = ["Trousers", "Leggings/Tights", "Dress", "Socks", "Trousers"]
    assert vision.class_precision(types, TROUSER, k=5) == pytest.approx(3 / 5)
    assert vision.class_precision([], TROUSER) == 0.0


def test_chance_baseline_is_the_share_of_catalogue_photos_of_a_class() -> None:
    photos = [_article("1", "Trousers", "Black"), _article("2", "Leggings/Tights", "Red")]
    photos += [_article("3", "Dress", "Red"), _article("4", "Bag", "Black")]
    baseline = vision.chance_baseline(photos)
    assert baseline[TROUSER] == 0.5 and baseline[DRESS] == 0.25 and baseline[BAG] == 0.25
    assert set(baseline) == set(CLASS_TYPES) and baseline[0] == 0.0
    assert vision.chance_baseline([])[TROUSER] == 0.0


def test_photographed_articles_are_those_with_a_file_else_the_synthetic_rule(tmp_path: Path) -> None:
    articles = [_article("1", "Trousers", "Black"), _article("2", "Socks", "Black"), _article("3", "Dress", "Teal")]
    (tmp_path / "2.jpg").touch()
    assert [a.article_id for a in vision.photographed(articles, lambda i: tmp_path / f"{i}.jpg")] == ["2"]
    # no file at all: a type with a Fashion-MNIST class and a colour with an RGB
    assert [a.article_id for a in vision.photographed(articles, lambda i: None)] == ["1"]


def test_text_queries_pair_garment_words_with_colour_families_that_have_enough_photos() -> None:
    photos = [_article(f"b{i}", "Trousers", "Black") for i in range(6)]
    photos += [_article(f"g{i}", "Leggings/Tights", "Dark Grey") for i in range(4)]
    photos += [_article(f"r{i}", "Dress", "Red") for i in range(9)]
    queries = vision.text_image_queries(photos, families=("black", "red"), min_relevant=5)
    assert [q.text for q in queries] == ["black trousers", "black leggings", "red dress"]
    assert [(q.label, q.family) for q in queries] == [(TROUSER, "black"), (TROUSER, "black"), (DRESS, "red")]
    # grey trousers and leggings together are 4 photos: no query can find 5 relevant ones
    assert vision.text_image_queries(photos, families=("grey", "red"), min_relevant=10) == []


def test_text_query_relevance_needs_class_and_colour_family() -> None:
    query = vision.TextImageQuery("blue trousers", TROUSER, "blue")
    assert query.relevance("Leggings/Tights", "Dark Blue") == (True, True)
    assert query.relevance("Trousers", "Black") == (True, False)
    assert query.relevance("Dress", "Blue") == (False, False)
    assert query.relevance("Shorts", "Blue") == (False, False)  # no Fashion-MNIST class


class FakeImageClient:
    def __init__(self, answers: dict[bytes, Ranked]) -> None:
        self.answers = answers
        self.calls: list[tuple[bytes, int]] = []

    def search_image(self, image: bytes, k: int, user_id: str = "") -> Ranked:
        self.calls.append((image, k))
        return self.answers[image]


def test_image_search_precision_by_class_against_chance() -> None:
    photos = [QueryPhoto(0, TROUSER, "Black"), QueryPhoto(1, TROUSER, "Red"), QueryPhoto(2, BAG, "Blue")]
    client = FakeImageClient(
        {
            b"t0": _ranked([str(i) for i in range(10)], ["Trousers"] * 8 + ["Dress"] * 2),
            b"t1": _ranked([str(i) for i in range(10)], ["Leggings/Tights"] * 4 + ["Bag"] * 6, degraded=True),
            b"b": _ranked(["x"], ["Bag"]),
        }
    )
    result = vision.evaluate_image_search(client, photos, [b"t0", b"t1", b"b"], {TROUSER: 0.2, BAG: 0.05})
    assert [k for _, k in client.calls] == [10, 10, 10]
    assert result["by_class"]["Trouser"] == {"precision": pytest.approx(0.6), "chance": 0.2, "queries": 2}
    assert result["by_class"]["Bag"]["precision"] == pytest.approx(0.1)
    assert result["precision"] == pytest.approx(0.35)  # each class weighs the same
    assert result["chance"] == pytest.approx(0.125)
    assert (result["queries"], result["degraded"]) == (3, 1)


def test_text_to_image_precision_and_class_only_precision() -> None:
    queries = [
        vision.TextImageQuery("black trousers", TROUSER, "black"),
        vision.TextImageQuery("red dress", DRESS, "red"),
    ]
    answers = [
        [("Trousers", "Black")] * 5 + [("Trousers", "Dark Blue")] * 3 + [("Dress", "Black")] * 2,
        [("Dress", "Red")] * 2 + [("Dress", "Dark Red")] * 2,  # a short answer
    ]
    result = vision.evaluate_text_to_image(queries, answers)
    assert result["precision"] == pytest.approx((0.5 + 0.4) / 2)
    assert result["class_precision"] == pytest.approx((0.8 + 0.4) / 2)
    assert result["by_class"]["Dress"] == {"precision": 0.4, "class_precision": 0.4, "queries": 1}
    assert result["queries"] == 2


class _RpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


class FailingImageClient:
    def __init__(self, error: grpc.RpcError) -> None:
        self.error = error

    def search_image(self, image: bytes, k: int, user_id: str = "") -> Ranked:
        raise self.error


def test_probe_says_why_vision_is_off_and_raises_other_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vision, "held_out_photos", lambda per_class, seed: ([QueryPhoto(0, BAG, "Red")], [b"png"]))
    off = _RpcError(grpc.StatusCode.FAILED_PRECONDITION, "image and hybrid search are off: VISION_ENABLED=0")
    assert "VISION_ENABLED=0" in (vision.probe(FailingImageClient(off), seed=1) or "")
    assert vision.probe(FakeImageClient({b"png": _ranked(["a"], ["Bag"])}), seed=1) is None
    waiting = _ranked(["a"], ["Bag"])
    waiting.degradations.append("clip: DEGRADATION_REASON_MODEL_NOT_READY")  # vision on, no CLIP version yet
    assert "no CLIP model served yet" in (vision.probe(FakeImageClient({b"png": waiting}), seed=1) or "")
    with pytest.raises(grpc.RpcError):
        vision.probe(FailingImageClient(_RpcError(grpc.StatusCode.UNAVAILABLE, "down")), seed=1)


class FakeSearchClient:
    def __init__(self) -> None:
        self.hybrid_calls: list[tuple[str, int]] = []

    def search(self, query: str, k: int, user_id: str = "") -> Ranked:
        return _ranked(["b", "a"])  # retrieval order: a, b

    def search_hybrid(self, query: str, k: int, image: bytes = b"", user_id: str = "") -> Ranked:
        self.hybrid_calls.append((query, k))
        return _ranked(["a", "b"], degraded=True)


def test_relevance_adds_the_hybrid_stage_only_when_asked() -> None:
    queries = [(AttributeQuery("jeans", "Black"), {"a": 2, "b": 1})]
    client = FakeSearchClient()
    tables, counts = evaluate_queries(client, queries, hybrid=True)
    means = tables[ALL].means()
    assert client.hybrid_calls == [("black jeans", 50)] * 3  # its answers are degraded: asked again, 3 times in all
    assert means[HYBRID]["ndcg@10"] == pytest.approx(1.0) and means[RERANK]["ndcg@10"] < 1.0
    assert counts == {"queries": 1, "reranked": 1, "degraded": 0, "hybrid_degraded": 1}
    tables, counts = evaluate_queries(FakeSearchClient(), queries)
    assert HYBRID not in tables[ALL].means() and "hybrid_degraded" not in counts


def _report(vision_section: dict, hybrid: bool) -> dict:
    table = StageTable()
    for stage, order in ((ANN, ["b", "a"]), (RERANK, ["b", "a"]), (PERSONALISED, ["b", "a"])):
        table.add(stage, score(order, {"a": 2, "b": 1}, 2))
    if hybrid:
        table.add(HYBRID, score(["a", "b"], {"a": 2, "b": 1}, 2))
    counts = {"queries": 1, "reranked": 1, "degraded": 0} | ({"hybrid_degraded": 0} if hybrid else {})
    return {
        "created": "2026-11-26T10:00:00Z",
        "machine": "test",
        "catalogue": "c.csv",
        "articles": 2,
        "seed": 1,
        "relevance": {"means": table.means(), "counts": counts},
        "personalisation": {"means": table.means(), "users": 1, "cold_users": 1, "cold_unchanged": 1},
        "vision": vision_section,
        "notes": "notes",
    }


def test_report_renders_the_vision_sections() -> None:
    section = {
        "enabled": True,
        "catalogue_photos": 900,
        "image_to_image": {
            "k": 10,
            "queries": 40,
            "degraded": 0,
            "by_class": {"Trouser": {"precision": 0.9, "chance": 0.12, "queries": 20}},
            "precision": 0.9,
            "chance": 0.12,
        },
        "text_to_image": {"k": 10, "queries": 16, "precision": 0.55, "class_precision": 0.8, "by_class": {}},
    }
    text = report.render(_report(section, hybrid=True))
    assert "| hybrid | 1.0000" in text
    assert "hybrid (no photo) vs text-only (ann+rerank), NDCG@10: +" in text
    assert "0 hybrid degraded" in text
    assert "| Trouser | 20 | 0.9000 | 0.1200 |" in text
    assert "| mean | 40 | **0.9000** | 0.1200 |" in text
    assert "class and colour family: **0.5500**" in text and "class only: 0.8000" in text


def test_report_says_when_vision_was_off() -> None:
    text = report.render(_report(vision.off("image and hybrid search are off: VISION_ENABLED=0"), hybrid=False))
    assert "vision off: image and hybrid search are off: VISION_ENABLED=0" in text
    assert "hybrid" not in text.split("## Vision")[0]
    assert "Image -> image" not in text


def test_the_client_reads_product_types_from_an_image_answer() -> None:
    reply = search_service_pb2.SearchImageResponse(
        results=[
            search_service_pb2.SearchResult(
                article=article_pb2.Article(article_id=i, product_type=t), score=s, rank=r, retrieval_score=s
            )
            for r, (i, t, s) in enumerate((("a", "Bag", 0.9), ("b", "Dress", 0.8)), start=1)
        ]
    )
    answer = stack_client._ranked(reply)
    assert (answer.final, answer.product_types, answer.reranked) == (["a", "b"], ["Bag", "Dress"], False)


def test_the_section_runs_image_and_text_queries(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    photos = [QueryPhoto(0, BAG, "Red"), QueryPhoto(1, DRESS, "Black")]
    monkeypatch.setattr(vision, "held_out_photos", lambda per_class, seed: (photos, [b"bag", b"dress"]))
    asked: list[str] = []

    async def clip_text_answers(endpoints: object, texts: list[str]) -> list[list[tuple[str, str]]]:
        asked.extend(texts)
        return [[("Dress", "Red")] * 10 for _ in texts]

    monkeypatch.setattr(vision, "clip_text_answers", clip_text_answers)
    articles = [_article(f"r{i}", "Dress", "Red") for i in range(10)] + [_article("b", "Bag", "Black")]
    client = FakeImageClient({b"bag": _ranked(["b"], ["Bag"]), b"dress": _ranked(["r1"], ["Dress"])})
    result = vision.evaluate(client, None, articles, lambda i: None, per_class=1, seed=1)  # no photo files
    assert result["catalogue_photos"] == 11 and asked == ["red dress"]
    assert result["image_to_image"]["by_class"]["Bag"] == {"precision": 0.1, "chance": 1 / 11, "queries": 1}
    assert result["text_to_image"]["precision"] == 1.0
