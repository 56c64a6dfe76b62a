"""The reranker model served by a real Triton (CPU, Python backend), against the in-process CrossEncoder."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from atelier.inference import reranker as rr
from atelier.offline.training.stand_in import build_stand_in_checkpoint
from tests.integration.conftest import offset_ports
from tests.integration.support.triton_server import serving, start_triton, stop_triton

PORTS = offset_ports(27011, 27012, 27013)  # grpc, http, metrics: apart from every stack's ports
FAILING_PORTS = offset_ports(27014, 27015, 27016)
MODEL = "reranker"
QUERY = "black slim fit jeans"
PASSAGES = [
    "Skinny jeans in black denim",
    "Floral summer dress",
    "Oversized wool coat in camel with a notch lapel and two front pockets",
    "",
    "Black jeans. " * 40,  # beyond max_length: cut
]


def _start(state: Path, ports: tuple[int, int, int], **settings: str) -> tuple[subprocess.Popen[bytes], Path]:
    return start_triton(state, ports, MODEL, "ATELIER_RERANK_", **settings)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-label cross-encoder made of the packaged MiniLM weights and a freshly initialised head.

    Its scores are meaningless as relevance: for these plumbing tests ONLY (shapes, ranges,
    batching, errors, Triton agreeing with the in-process model).
    """
    return build_stand_in_checkpoint(tmp_path_factory.mktemp("reranker-checkpoint"), num_labels=1)


# Full precision on both sides (fp32 even on a CPU with AMX, where auto is bf16): int8's activation
# scale is set per forward pass, so its scores move slightly with the rows beside them (the unit tests
# cover int8).
EXACT = {"ATELIER_RERANK_QUANTIZE": "none", "ATELIER_RERANK_PRECISION": "fp32"}


@pytest.fixture(scope="module")
def encoder(checkpoint: Path) -> object:
    return rr.CrossEncoder(rr.RerankerSettings.from_env({"ATELIER_RERANK_MODEL_DIR": str(checkpoint), **EXACT}))


@pytest.fixture(scope="module")
def triton_url(tmp_path_factory: pytest.TempPathFactory, checkpoint: Path) -> Iterator[str]:
    state = tmp_path_factory.mktemp("triton-reranker")
    with serving(state, PORTS, MODEL, "ATELIER_RERANK_", ATELIER_RERANK_MODEL_DIR=str(checkpoint), **EXACT) as url:
        yield url


def _strings(name: str, values: list[bytes]) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput(name, [len(values), 1], "BYTES")
    tensor.set_data_from_numpy(np.array(values, dtype=np.object_).reshape(-1, 1))
    return tensor


def _infer(url: str, queries: list[str | bytes], passages: list[str | bytes]) -> tuple[np.ndarray, np.ndarray]:
    """(SCORE, LOGIT) of one request of one row per pair."""
    encode = lambda values: [v if isinstance(v, bytes) else v.encode() for v in values]  # noqa: E731
    inputs = [_strings("QUERY", encode(queries)), _strings("PASSAGE", encode(passages))]
    with grpcclient.InferenceServerClient(url) as client:
        result = client.infer(MODEL, inputs, client_timeout=30)
    return result.as_numpy("SCORE"), result.as_numpy("LOGIT")


def test_scores_are_probabilities_equal_to_the_in_process_model(triton_url: str, encoder: object) -> None:
    scores, logits = _infer(triton_url, [QUERY] * len(PASSAGES), PASSAGES)
    assert scores.shape == logits.shape == (len(PASSAGES), 1)
    assert scores.dtype == logits.dtype == np.float32
    assert np.all((scores > 0) & (scores < 1))
    expected_scores, expected_logits = encoder.predict([QUERY] * len(PASSAGES), PASSAGES)
    np.testing.assert_allclose(scores[:, 0], expected_scores, atol=1e-4)
    np.testing.assert_allclose(logits[:, 0], expected_logits, atol=1e-4)
    np.testing.assert_allclose(scores, 1 / (1 + np.exp(-logits)), atol=1e-6)


def test_one_search_request_of_fifty_candidates(triton_url: str, encoder: object) -> None:
    passages = [f"{colour} {garment}" for colour in ("black", "white", "red", "navy", "beige") for garment in range(10)]
    scores, _ = _infer(triton_url, [QUERY] * 50, passages)
    assert scores.shape == (50, 1)
    np.testing.assert_allclose(scores[:, 0], encoder.score([QUERY] * 50, passages), atol=1e-4)


def _statistics(url: str) -> tuple[int, int]:
    """(requests answered, forward passes run) by the model so far."""
    with grpcclient.InferenceServerClient(url) as client:
        stats = client.get_inference_statistics(MODEL).model_stats[0]
    return stats.inference_stats.success.count, stats.execution_count


def _concurrently(url: str, requests: list[tuple[list[str], list[str]]], encoder: object) -> tuple[int, int]:
    """(requests answered, forward passes run) for `requests` sent at once, each checked against the encoder."""
    before = _statistics(url)
    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        results = list(pool.map(lambda request: _infer(url, *request), requests))
    for (queries, passages), (scores, _) in zip(requests, results, strict=True):
        np.testing.assert_allclose(scores[:, 0], encoder.score(queries, passages), atol=1e-4)
    answered, executions = (now - then for now, then in zip(_statistics(url), before, strict=True))
    return answered, executions


def test_two_instances_and_requests_of_at_most_64_rows(triton_url: str) -> None:
    """Search reads both (atelier/serving/model_readiness.py) and sends a query's pairs as one slice per instance."""
    with grpcclient.InferenceServerClient(triton_url) as client:
        config = client.get_model_config(MODEL).config
    assert (sum(group.count for group in config.instance_group), config.max_batch_size) == (2, 64)


def test_concurrent_shallow_requests_share_forward_passes(triton_url: str, encoder: object) -> None:
    requests = [([f"query {i}"] * 20, [f"{p} {i}" for p in PASSAGES * 4]) for i in range(8)]
    answered, executions = _concurrently(triton_url, requests, encoder)
    assert answered == len(requests)
    assert executions < len(requests), "the dynamic batcher should coalesce concurrent requests"


def test_the_two_halves_of_a_full_depth_search_are_never_merged(triton_url: str, encoder: object) -> None:
    halves = [([QUERY] * 50, [f"{p} {half}" for p in PASSAGES * 10]) for half in range(2)]
    assert _concurrently(triton_url, halves, encoder) == (2, 2)


def test_a_bad_request_fails_alone(triton_url: str, encoder: object) -> None:
    def run(request: tuple[list[str | bytes], list[str | bytes]]) -> object:
        try:
            return _infer(triton_url, *request)
        except InferenceServerException as exc:
            return exc

    good = ([QUERY] * 3, PASSAGES[:3])
    bad = ([QUERY.encode(), b"\xff\xfe jeans"], [b"a", b"b"])
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(run, [good, good, bad, good, bad, good]))
    for result in results[:2] + results[3:4] + results[5:]:
        assert isinstance(result, tuple)
        np.testing.assert_allclose(result[0][:, 0], encoder.score(*good), atol=1e-4)
    for error in (results[2], results[4]):
        assert isinstance(error, InferenceServerException)
        assert error.status() == "StatusCode.INVALID_ARGUMENT"
        assert "QUERY row 1 is not valid UTF-8" in error.message()


def test_rows_of_queries_and_passages_must_match(triton_url: str) -> None:
    with pytest.raises(InferenceServerException) as error:
        _infer(triton_url, [QUERY] * 2, PASSAGES[:3])
    assert error.value.status() == "StatusCode.INVALID_ARGUMENT"


def _failed_load_log(state: Path, **settings: str) -> str:
    process, log = _start(state, FAILING_PORTS, **settings)
    try:
        # --exit-on-error: the failed load of the only model stops the server.
        assert process.wait(timeout=120) != 0
    finally:
        stop_triton(process)
    return log.read_text()


def test_without_a_model_dir_loading_fails_naming_the_setting(tmp_path: Path) -> None:
    log = _failed_load_log(tmp_path)
    assert "ATELIER_RERANK_MODEL_DIR is not set: run `atelier models train-reranker`" in log


def test_an_invalid_model_dir_fails_loading_naming_the_setting(tmp_path: Path) -> None:
    empty = tmp_path / "weights"
    empty.mkdir()
    log = _failed_load_log(tmp_path / "state", ATELIER_RERANK_MODEL_DIR=str(empty))
    assert f"ATELIER_RERANK_MODEL_DIR={empty}: no config.json" in log
