"""The image benchmarks' requests and the vision probe, against an in-process fake edge (aiohttp)."""

from __future__ import annotations

import collections
import io
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from benchmarks import mixed_load, search_image
from benchmarks.common import vision_off_reason

VISION_OFF = {"code": 9, "message": "image and hybrid search are off: VISION_ENABLED=0 (...)", "details": []}


class FakeEdge:
    def __init__(self, vision: bool) -> None:
        self.vision = vision
        self.requests: list[tuple[str, dict]] = []

    async def search(self, request: web.Request) -> web.Response:
        body = dict(request.query) if request.method == "GET" else await request.json()
        self.requests.append((request.path, body))
        if request.path != "/v1/search" and not self.vision:
            return web.json_response(VISION_OFF, status=400)
        if body.get("image") == "broken":
            return web.json_response({"code": 13, "message": "boom"}, status=500)
        stages = ["clip_image", "ann_image"] if request.path == "/v1/search:image" else ["embed", "ann", "rerank"]
        return web.json_response(
            {
                "results": [{"article": {"articleId": "0108775015"}, "score": 1.0, "rank": 1}],
                "degradations": [{"component": "reranker", "reason": "DOWNSTREAM_TIMEOUT"}] if "query" in body else [],
                "timings": [{"stage": stage, "millis": 2.0} for stage in stages],
            }
        )


@pytest.fixture
async def edge(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[str, FakeEdge]]:
    monkeypatch.setenv("ATELIER_API_KEY", "atk_test")  # the benchmarks send the edge's key
    fake = FakeEdge(vision=True)
    app = web.Application()
    app.router.add_get("/v1/search", fake.search)
    app.router.add_post("/v1/search", fake.search)
    app.router.add_post("/v1/search:image", fake.search)
    app.router.add_post("/v1/search:hybrid", fake.search)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", fake
    await runner.cleanup()


async def test_the_probe_tells_vision_off_from_on_and_from_a_failure(edge: tuple[str, FakeEdge]) -> None:
    base, fake = edge
    async with aiohttp.ClientSession() as session:
        assert await vision_off_reason(session, base, "cGhvdG8=") is None
        with pytest.raises(RuntimeError, match="500"):
            await vision_off_reason(session, base, "broken")
        fake.vision = False
        assert "VISION_ENABLED=0" in (await vision_off_reason(session, base, "cGhvdG8=") or "")


async def test_search_image_benchmark_sends_photos_and_hybrid_texts_and_reads_stages(
    edge: tuple[str, FakeEdge], capsys: pytest.CaptureFixture[str]
) -> None:
    base, fake = edge
    texts = iter(["black jeans", "red dress", "blue shirt"])
    bodies = search_image.request_bodies("hybrid", ["p1", "p2"], texts, 3, 10, "u1")
    assert bodies == [
        {"image": "p1", "k": 10, "query": "black jeans", "userId": "u1"},
        {"image": "p2", "k": 10, "query": "red dress", "userId": "u1"},
        {"image": "p1", "k": 10, "query": "blue shirt", "userId": "u1"},
    ]
    outcomes = await search_image.run_phase(base, "hybrid", bodies, concurrency=2)
    assert [path for path, _ in fake.requests] == ["/v1/search:hybrid"] * 3
    assert search_image.stage_means(outcomes) == {"embed": (2.0, 3), "ann": (2.0, 3), "rerank": (2.0, 3)}
    image = await search_image.run_phase(
        base, "image", search_image.request_bodies("image", ["p1"], iter(()), 2, 10, ""), 1
    )
    assert fake.requests[-1] == ("/v1/search:image", {"image": "p1", "k": 10})
    search_image.report("image", 1, image, 1.0)
    search_image.report("hybrid", 2, outcomes, 1.0)
    printed = capsys.readouterr().out
    assert "| image | 1 | 2 | 2.0 |" in printed and "| 0.0% | 0 | clip_image 2.0, ann_image 2.0 |" in printed
    assert "| 100.0% | 0 | embed 2.0, ann 2.0, rerank 2.0 |" in printed


async def _mixed_requests(base: str, stand_ins: dict[str, str], n: int = 60) -> None:
    workload = mixed_load.Workload(base, seed=3, users=5, photos=["p1", "p2"], stand_ins=stand_ins)
    async with aiohttp.ClientSession() as session:
        for kind in ["image", "hybrid"] * (n // 2):
            await workload._search(session, kind)
    assert not workload.tally.hard_errors


async def test_mixed_load_sends_real_image_and_hybrid_searches_when_vision_is_on(edge: tuple[str, FakeEdge]) -> None:
    base, fake = edge
    await _mixed_requests(base, {})
    paths = collections.Counter(path for path, _ in fake.requests)
    assert paths == {"/v1/search:image": 30, "/v1/search:hybrid": 30}
    assert all(body["image"] in {"p1", "p2"} for path, body in fake.requests if path == "/v1/search:image")
    hybrid = [body for path, body in fake.requests if path == "/v1/search:hybrid"]
    assert all(body["query"] for body in hybrid)
    with_photo = sum("image" in body for body in hybrid)
    assert 5 < with_photo < 25  # about half


async def test_mixed_load_stands_in_with_text_search_when_vision_is_off(edge: tuple[str, FakeEdge]) -> None:
    base, fake = edge
    fake.vision = False
    await _mixed_requests(base, mixed_load.STAND_INS, n=10)
    assert {path for path, _ in fake.requests} == {"/v1/search"}


async def test_the_open_loop_sends_at_its_poisson_arrivals_and_tallies_the_rerank_depth(
    edge: tuple[str, FakeEdge],
) -> None:
    base, fake = edge
    workload = mixed_load.Workload(base, 3, 5, [], {}, mix={"text": 1}, repeated_share=0.0)
    tally, seconds = await mixed_load.run_open(workload, rate=40, seconds=0.5, seed=8)
    arrivals, due = mixed_load.random.Random(9), 0.0
    expected = 0
    while (due := due + arrivals.expovariate(40)) < 0.5:
        expected += 1
    assert tally.searches == expected == len(fake.requests) and 5 < expected < 40
    assert {path for path, _ in fake.requests} == {"/v1/search"}
    assert tally.rerank_depths == {0: expected}  # the fake answers without rerankDepth: 0
    assert seconds >= 0.4


async def test_the_answers_file_has_a_line_per_answered_search_with_its_depth_timings_and_degradations(
    edge: tuple[str, FakeEdge],
) -> None:
    base, _ = edge
    answers = io.StringIO()
    workload = mixed_load.Workload(base, 3, 5, ["p1"], {}, mix={"text": 1}, repeated_share=0.0, answers=answers)
    async with aiohttp.ClientSession() as session:
        for kind in ["text", "image", "text"]:
            await workload._search(session, kind)
    lines = [json.loads(line) for line in answers.getvalue().splitlines()]
    assert [line["kind"] for line in lines] == ["text", "image", "text"]
    assert lines[0]["rerank_depth"] == 0 and lines[0]["timings"] == {"embed": 2.0, "ann": 2.0, "rerank": 2.0}
    assert lines[0]["degradations"] == [{"component": "reranker", "reason": "DOWNSTREAM_TIMEOUT", "detail": ""}]
    assert lines[1]["degradations"] == [] and lines[0]["time"] <= lines[2]["time"]
