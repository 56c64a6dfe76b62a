"""The reranker on ONNX Runtime: a published version carries its export, and a CPU instance serves it.

The checkpoint is a 2-layer stand-in (packaged MiniLM weights, a seeded random head): right for the
plumbing and the numerics, meaningless as scores.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from atelier.inference import reranker as rr
from atelier.inference.onnx_runtime import FILES, exported_file, forward_inputs
from atelier.inference.settings import SettingsError, version_settings
from atelier.model_repository.repository import ModelRepository, sha256_file
from atelier.offline.training.stand_in import build_stand_in_checkpoint
from atelier.serving.settings import ROOT

QUERIES = ["black slim fit jeans"] * 3 + ["floral summer dress"]
PASSAGES = [
    "Skinny jeans in black denim",
    "Oversized wool coat in camel. Colour: Beige",
    "Slim fit jeans. Colour: Black. Garment: Trousers",
    "Floral summer dress in viscose",
]


@pytest.fixture(scope="module")
def version(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("onnx")
    source = build_stand_in_checkpoint(folder / "weights", num_hidden_layers=2)
    repository = ModelRepository(folder / "repository", ROOT / "triton_models")
    return repository.write_version("reranker", 1, source, str(source))


def _encoder(version: Path, **settings: str) -> rr.CrossEncoder:
    """The version's encoder with its settings found as Triton's model finds them (version_settings)."""
    args = {"model_repository": str(version.parent), "model_version": version.name}
    env = {f"ATELIER_RERANK_{name.upper()}": value for name, value in settings.items()}
    return rr.CrossEncoder(version_settings(rr.RerankerSettings, args, env=env))


def test_a_published_version_carries_its_export_in_its_record(version: Path) -> None:
    record = json.loads((version / "version.json").read_text())
    assert record["export"] == {"files": [f"onnx/{FILES['none']}", f"onnx/{FILES['int8']}"]}
    for name in record["export"]["files"]:
        assert record["files"][name] == sha256_file(version / name)
    assert _encoder(version).settings.export_dir == version / "onnx"
    assert exported_file(version / "onnx", "int8") == version / "onnx" / FILES["int8"]


def test_onnx_runtime_threads_sleep_between_runs(version: Path) -> None:
    # Spinning threads took the reranker's cores after each query's embedding (onnx_runtime.py).
    session = _encoder(version, quantize="none", runtime="onnx").session
    assert session is not None and session.config_entry("session.intra_op.allow_spinning") == "0"


def test_onnx_runtime_scores_as_the_transformers_model_does(version: Path) -> None:
    torch_fp32 = _encoder(version, quantize="none", runtime="torch")
    onnx_fp32 = _encoder(version, quantize="none", runtime="onnx")
    onnx_int8 = _encoder(version, quantize="int8", runtime="auto")
    assert torch_fp32.runtime.startswith("torch") and onnx_fp32.runtime.startswith("onnxruntime")
    assert onnx_int8.runtime == f"onnxruntime (onnx/{FILES['int8']})" and onnx_int8.model is None
    reference, odds = torch_fp32.predict(QUERIES, PASSAGES)
    np.testing.assert_allclose(onnx_fp32.predict(QUERIES, PASSAGES)[0], reference, atol=1e-4)
    scores, int8_odds = onnx_int8.predict(QUERIES, PASSAGES)
    assert scores.dtype == np.float32 and scores.shape == (4,)
    np.testing.assert_allclose(scores, torch.sigmoid(torch.from_numpy(int8_odds)).numpy(), atol=1e-6)
    assert np.abs(int8_odds - odds).max() < 0.5  # int8 noise, not another model


def test_without_an_export_auto_runs_torch_and_onnx_refuses_to_load(tmp_path: Path) -> None:
    bare = build_stand_in_checkpoint(tmp_path / "checkpoint", num_hidden_layers=1)
    encoder = rr.CrossEncoder(rr.RerankerSettings(model_dir=bare, runtime="auto"))
    assert encoder.runtime == (
        "torch (the version carries no exported model (`atelier models publish` exports one); "
        "the last layer for the first token only)"
    )
    with pytest.raises(SettingsError, match="ATELIER_RERANK_RUNTIME=onnx: the version carries no exported model"):
        rr.CrossEncoder(rr.RerankerSettings(model_dir=bare, runtime="onnx"))


def test_a_gpu_or_fp16_instance_runs_torch(version: Path) -> None:
    assert rr.onnx_unavailable("auto", torch.device("cuda", 0), torch.float16, Path("x")) is not None
    assert rr.onnx_unavailable("auto", torch.device("cpu"), torch.float32, Path("x")) is None
    with pytest.raises(SettingsError, match="CPU instances in fp32"):
        rr.onnx_unavailable("onnx", torch.device("cpu"), torch.float16, Path("x"))


def test_the_export_names_its_inputs_in_the_models_forward_order() -> None:
    class Model:
        def forward(self, input_ids: object, attention_mask: object = None, token_type_ids: object = None) -> None:
            pass

    # a tokenizer's order (BERT's puts token_type_ids second): exported by position, it would swap two inputs
    sample = {"input_ids": 1, "token_type_ids": 2, "attention_mask": 3}
    assert forward_inputs(Model(), sample) == ["input_ids", "attention_mask", "token_type_ids"]
