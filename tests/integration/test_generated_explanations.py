"""Generated explanations (SEARCH_EXPLAIN_MODE=llm) through Envoy, REST and gRPC, written by the real small
model Triton serves as `explainer` (the packaged SmolLM2-135M-Instruct, GGUF): every sentence a shopper reads
passes the grounding check or is the template's, with the reason; a request that finds the generation slot
taken answers at once with the template's; the explainer is published and updated like every model.

A second stack beside the session's (tests/integration/support/side_stack.py), on the session's offset + 3000.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from atelier.edge.client import edge_channel
from atelier.inference.explainer import PACKAGED_GGUF, packaged_folder
from atelier.serving.articles import FIELDS
from atelier.stack.launcher import Stack
from fashion.v1 import explanation_pb2, search_service_pb2, search_service_pb2_grpc
from services.search.grounding import problems, vocabulary
from tests.integration.support import edge
from tests.integration.support.side_stack import atelier, side_stack

QUERIES = ("black trousers", "red dress", "white t-shirt")
UNGROUNDED = "DEGRADATION_REASON_EXPLANATION_UNGROUNDED"
GENERATED = "EXPLANATION_SOURCE_GENERATED"


@pytest.fixture(scope="module")
def llm_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # Two generated sentences an answer, within a budget for CI's 2 busy cores.
    environment = {"SEARCH_EXPLAIN_MODE": "llm", "SEARCH_EXPLAIN_MAX_GENERATED": "2", "SEARCH_EXPLAIN_BUDGET_S": "20"}
    with side_stack(tmp_path_factory.mktemp("llm-stack"), 3000, environment) as stack:
        yield stack


def _known_values(results: list[dict]) -> dict[str, dict[str, str]]:
    """The answer's own colours and garments: enough for the check to know the words it meets here."""
    return {
        "colour": {r["article"]["colour"].lower(): r["article"]["colour"] for r in results},
        "product_type": {r["article"]["productType"].lower(): r["article"]["productType"] for r in results},
    }


def _snake(article: dict) -> dict[str, str]:
    camel = {"".join(w if i == 0 else w.capitalize() for i, w in enumerate(f.split("_"))): f for f in FIELDS}
    return {camel[key]: value for key, value in article.items() if key in camel and isinstance(value, str)}


def test_generated_sentences_pass_the_check_or_give_way_to_the_template(llm_stack: Stack) -> None:
    generated = 0
    for query in QUERIES:
        status, body = edge.search(llm_stack, query=query, k=10, explainTop=2, timeout_s=60)
        assert status == 200, body
        results = body["results"]
        assert [("explanation" in result) for result in results] == [True] * 2 + [False] * 8
        ungrounded = [d for d in body.get("degradations", []) if d["reason"] == UNGROUNDED]
        words = vocabulary(_known_values(results))
        for result in results[:2]:
            explanation = result["explanation"]
            assert explanation["signals"], "the signals are the answer's own, whoever wrote the sentence"
            if explanation["source"] == GENERATED:
                generated += 1
                kinds = [explanation_pb2.ExplanationSignalKind.Value(s["kind"]) for s in explanation["signals"]]
                assert problems(explanation["text"], _snake(result["article"]), words, kinds) == []
            else:
                assert any(d["detail"].startswith(f"result {result['rank']}:") for d in ungrounded), body
                assert all(d["component"] == "explainer" and d["fallback"] == "template" for d in ungrounded)
    assert generated > 0, "the model wrote no sentence that passed the check"


def test_grpc_gets_generated_sentences_too(llm_stack: Stack) -> None:
    with edge_channel(llm_stack.endpoints.edge_grpc_address) as channel:
        search = search_service_pb2_grpc.SearchServiceStub(channel).SearchText
        reply = search(search_service_pb2.SearchTextRequest(query=QUERIES[0], k=3, explain_top=1), timeout=60)
    (explained,) = [result for result in reply.results if result.HasField("explanation")]
    assert explained.explanation.text
    assert explained.explanation.source in {
        explanation_pb2.EXPLANATION_SOURCE_GENERATED,
        explanation_pb2.EXPLANATION_SOURCE_TEMPLATE,
    }


def test_a_request_finding_the_generation_slot_taken_gets_the_templates_at_once(llm_stack: Stack) -> None:
    answers: list[dict] = []

    def ask(query: str) -> None:
        status, body = edge.search(llm_stack, query=query, k=5, explainTop=3, timeout_s=60)
        assert status == 200, body
        answers.append(body)

    # Different queries: identical searches in flight share one answer (services/search/single_flight.py).
    threads = [threading.Thread(target=ask, args=(query,)) for query in QUERIES]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    busy = [d for body in answers for d in body.get("degradations", []) if d["reason"].endswith("_CAPACITY_REJECTED")]
    assert busy and all("SEARCH_EXPLAIN_MAX_IN_FLIGHT" in d["detail"] for d in busy), answers


def test_the_explainer_is_published_and_updated_like_every_model(llm_stack: Stack, tmp_path: Path) -> None:
    assert "explainer" in atelier("models", "list")
    checkpoint = tmp_path / "smollm2"
    checkpoint.mkdir()
    shutil.copy(packaged_folder() / PACKAGED_GGUF, checkpoint / PACKAGED_GGUF)
    published = atelier("models", "publish", "explainer", str(checkpoint))
    assert "explainer: serving version 2" in published, published
    status, body = edge.search(llm_stack, query=QUERIES[0], k=3, explainTop=1, timeout_s=60)
    assert status == 200 and body["results"][0]["explanation"]["text"], body
    listing = atelier("models", "list")
    assert any(line.split()[:4] == ["explainer", "1,2", "2", "ready"] for line in listing.splitlines()), listing
