"""The clip_image and clip_text models served by one real Triton (CPU, Python backend), against the
in-process encoders of the same code."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from atelier.inference import clip_image as ci
from atelier.inference import clip_text as ct
from tests.clip_support import build_tiny_checkpoint, photo
from tests.integration.conftest import offset_ports
from tests.integration.support.triton_server import serving, start_triton, stop_triton

PORTS = offset_ports(27021, 27022, 27023)  # grpc, http, metrics: apart from every stack's ports
FAILING_PORTS = offset_ports(27024, 27025, 27026)
MODELS = ("clip_image", "clip_text")
SETTINGS_PREFIX = "ATELIER_CLIP_"
DIMENSION = 24  # the tiny checkpoint's projection_dim
PHOTOS = [
    photo("Black", "Trousers"),
    photo("Red", "Dress", size=(120, 60), image_format="PNG"),
    photo("Blue", "Cap", size=(30, 50), image_format="WEBP"),
]
TEXTS = ["black slim fit jeans", "red dress", "", "floral summer dress " * 30]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny CLIP checkpoint in train-clip's layout (tests/clip_support.py).

    Its vectors mean nothing: for these plumbing tests ONLY (shapes, norms, batching, errors,
    Triton agreeing with the in-process encoders).
    """
    return build_tiny_checkpoint(tmp_path_factory.mktemp("clip-checkpoint"))


@pytest.fixture(scope="module")
def image_encoder(checkpoint: Path) -> object:
    return ci.ImageEncoder(ci.ClipImageSettings.from_env({"ATELIER_CLIP_MODEL_DIR": str(checkpoint)}))


@pytest.fixture(scope="module")
def text_encoder(checkpoint: Path) -> object:
    return ct.TextEncoder(ct.ClipTextSettings.from_env({"ATELIER_CLIP_MODEL_DIR": str(checkpoint)}))


@pytest.fixture(scope="module")
def triton_url(tmp_path_factory: pytest.TempPathFactory, checkpoint: Path) -> Iterator[str]:
    state = tmp_path_factory.mktemp("triton-clip")
    with serving(state, PORTS, MODELS, SETTINGS_PREFIX, ATELIER_CLIP_MODEL_DIR=str(checkpoint)) as url:
        yield url


def _infer(url: str, model: str, name: str, values: list[bytes]) -> np.ndarray:
    """EMBEDDING of one request of one row per value."""
    tensor = grpcclient.InferInput(name, [len(values), 1], "BYTES")
    tensor.set_data_from_numpy(np.array(values, dtype=np.object_).reshape(-1, 1))
    with grpcclient.InferenceServerClient(url) as client:
        return client.infer(model, [tensor], client_timeout=30).as_numpy("EMBEDDING")


def _images(url: str, photos: list[bytes]) -> np.ndarray:
    return _infer(url, "clip_image", "IMAGE", photos)


def _texts(url: str, texts: list[str]) -> np.ndarray:
    return _infer(url, "clip_text", "TEXT", [text.encode() for text in texts])


def assert_unit_vectors_equal(vectors: np.ndarray, expected: np.ndarray) -> None:
    """Triton's embeddings: one float32 unit vector per row, equal to the in-process encoder's."""
    assert vectors.shape == (len(expected), DIMENSION) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors, expected, atol=1e-5)


def test_image_embeddings_are_unit_vectors_equal_to_the_in_process_encoder(
    triton_url: str, image_encoder: object
) -> None:
    assert_unit_vectors_equal(_images(triton_url, PHOTOS), image_encoder.encode_bytes(PHOTOS))


def test_text_embeddings_are_unit_vectors_equal_to_the_in_process_encoder(
    triton_url: str, text_encoder: object
) -> None:
    assert_unit_vectors_equal(_texts(triton_url, TEXTS), text_encoder.encode(TEXTS))


def test_a_full_request_of_max_batch_size_photos(triton_url: str, image_encoder: object) -> None:
    photos = [photo(f"colour {i}", "Dress") for i in range(64)]  # the catalogue load's request size
    vectors = _images(triton_url, photos)
    assert vectors.shape == (64, DIMENSION)
    np.testing.assert_allclose(vectors, image_encoder.encode_bytes(photos), atol=1e-5)


def _executions(url: str, model: str) -> tuple[int, int]:
    """(requests answered, forward passes run) by the model so far."""
    with grpcclient.InferenceServerClient(url) as client:
        stats = client.get_inference_statistics(model).model_stats[0]
    return stats.inference_stats.success.count, stats.execution_count


def test_concurrent_requests_share_forward_passes(triton_url: str, image_encoder: object) -> None:
    requests = [[PHOTOS[i % 3], PHOTOS[(i + 1) % 3]] for i in range(8)]
    before = _executions(triton_url, "clip_image")
    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        results = list(pool.map(lambda photos: _images(triton_url, photos), requests))
    answered, executions = (now - then for now, then in zip(_executions(triton_url, "clip_image"), before, strict=True))
    for photos, vectors in zip(requests, results, strict=True):
        np.testing.assert_allclose(vectors, image_encoder.encode_bytes(photos), atol=1e-5)
    assert answered == len(requests)
    assert executions < len(requests), "the dynamic batcher should coalesce concurrent requests"


def test_a_request_with_a_non_image_fails_alone(triton_url: str, image_encoder: object) -> None:
    def run(photos: list[bytes]) -> object:
        try:
            return _images(triton_url, photos)
        except InferenceServerException as exc:
            return exc

    good, bad = PHOTOS[:2], [PHOTOS[0], b"<html>not an image</html>"]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(run, [good, good, bad, good, bad, good]))
    for result in results[:2] + results[3:4] + results[5:]:
        assert isinstance(result, np.ndarray)
        np.testing.assert_allclose(result, image_encoder.encode_bytes(good), atol=1e-5)
    for error in (results[2], results[4]):
        assert isinstance(error, InferenceServerException)
        assert error.status() == "StatusCode.INVALID_ARGUMENT"
        assert "IMAGE row 1 is not a JPEG, PNG or WebP image" in error.message()


def test_a_text_that_is_not_utf8_is_refused(triton_url: str) -> None:
    with pytest.raises(InferenceServerException) as error:
        _infer(triton_url, "clip_text", "TEXT", [b"jeans", b"\xff\xfe jeans"])
    assert error.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "TEXT row 1 is not valid UTF-8" in error.value.message()


def test_without_a_model_dir_loading_fails_naming_the_setting(tmp_path: Path) -> None:
    process, log = start_triton(tmp_path, FAILING_PORTS, "clip_image", SETTINGS_PREFIX)
    try:
        # --exit-on-error: the failed load of the only model stops the server.
        assert process.wait(timeout=120) != 0
    except subprocess.TimeoutExpired:
        pytest.fail(f"Triton kept running without ATELIER_CLIP_MODEL_DIR:\n{log.read_text()[-2000:]}")
    finally:
        stop_triton(process)
    assert "ATELIER_CLIP_MODEL_DIR is not set: run `atelier models train-clip`" in log.read_text()
