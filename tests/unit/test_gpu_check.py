"""benchmarks/gpu_check.py without a stack or a GPU: the production architectures it builds (on torch's
meta device: no weights), the environment it starts the stack with, its options, and what it stops."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from atelier.stack import configuration
from benchmarks import gpu_check


@pytest.mark.parametrize(
    ("name", "architecture", "parameters_m"),
    [
        ("bge-small-en-v1.5", "BertModel", 33.4),  # BAAI/bge-small-en-v1.5: 33.4M
        ("bge-reranker-base", "XLMRobertaForSequenceClassification", 278.0),  # BAAI/bge-reranker-base: 278M
        ("clip-vit-base-patch32", "CLIPModel", 151.3),  # openai/clip-vit-base-patch32: 151.3M
    ],
)
def test_the_checkpoints_have_the_production_architectures(name: str, architecture: str, parameters_m: float) -> None:
    with torch.device("meta"):
        model = gpu_check._build_model(name)
    assert type(model).__name__ == architecture == gpu_check.CHECKPOINTS[name][1]
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(parameters_m, abs=0.3)


def test_clip_vit_b32_is_transformers_default_clip_config_but_for_the_stand_in_token_ids() -> None:
    from transformers import CLIPConfig

    default = CLIPConfig()
    spec = gpu_check.CLIP_VIT_B32
    assert spec["projection_dim"] == default.projection_dim == 512
    for tower in ("text_config", "vision_config"):
        for key, value in spec[tower].items():
            if key not in ("pad_token_id", "bos_token_id", "eos_token_id"):
                assert getattr(getattr(default, tower), key) == value, (tower, key)


def test_the_stand_in_tokenizer_fits_every_vocabulary() -> None:
    tokenizer = gpu_check._stand_in_tokenizer()
    assert tokenizer.is_fast and len(tokenizer) <= 30522
    assert set(tokenizer("black jeans", "skinny jeans in black denim")) == {"input_ids", "attention_mask"}
    assert (tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id) == (0, 101, 102)
    assert gpu_check.BGE_RERANKER_BASE["pad_token_id"] == gpu_check.CLIP_VIT_B32["text_config"]["pad_token_id"] == 0


def test_the_stack_environment_names_real_settings(tmp_path: Path) -> None:
    environment = gpu_check.stack_environment(tmp_path, 7000, gpu=True, base={"PATH": "/bin"})
    assert environment["PATH"] == "/bin"
    assert environment["ATELIER_STATE_DIR"] == str(tmp_path / "state")
    assert environment["ATELIER_PORT_OFFSET"] == "7000"
    assert environment["ATELIER_TRITON_INSTANCE_KIND"] == "gpu"
    assert gpu_check.stack_environment(tmp_path, 7000, gpu=False, base={})["ATELIER_TRITON_INSTANCE_KIND"] == "cpu"
    assert environment["ATELIER_RERANK_MODEL_DIR"] == str(tmp_path / "checkpoints" / "bge-reranker-base")
    known = {variable.name for process in configuration.PROCESSES for variable in configuration.variables(process)}
    ours = {name for name in environment if name.startswith("ATELIER_")}
    assert ours <= known, sorted(ours - known)


def test_gpu_is_the_default_where_nvidia_smi_works(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu_check, "nvidia_smi", lambda *query: "GPU 0: NVIDIA H200")
    assert gpu_check.parse([]).gpu is True
    assert gpu_check.parse(["--cpu"]).gpu is False
    monkeypatch.setattr(gpu_check, "nvidia_smi", lambda *query: None)
    args = gpu_check.parse(["down", "--offset", "8000"])
    assert (args.step, args.gpu, args.offset, args.keep_up) == ("down", False, 8000, False)
    assert gpu_check.parse(["--gpu"]).gpu is True
    with pytest.raises(SystemExit):
        gpu_check.parse(["--gpu", "--cpu"])


def test_catalogue_arguments() -> None:
    assert gpu_check.catalogue_arguments(3000) == ["--demo"]
    assert gpu_check.catalogue_arguments(200) == ["--synthetic", "--articles", "200"]


def test_leftover_processes_are_those_running_from_the_state_folder(tmp_path: Path) -> None:
    state = tmp_path / "state"
    script = "import sys, time; time.sleep(30)"
    ours = subprocess.Popen([sys.executable, "-c", script, str(state / "triton" / "stub")])
    other = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "elsewhere")])
    try:
        found = dict(gpu_check.leftover_processes(state))
        assert ours.pid in found and other.pid not in found
    finally:
        for process in (ours, other):
            process.kill()
            process.wait()


def test_a_report_row() -> None:
    line = gpu_check.row("reranker: 100 pairs", [10.0, 20.0, 30.0, 40.0, 50.0], rows_per_call=100, unit="pairs")
    assert line.split()[-6:] == ["5", "30.0", "50.0", "30.0", "3333", "pairs/s"]  # runs, p50, p99, mean, rows/s
    assert len(set(gpu_check.queries(500))) == 500 and gpu_check.queries(5, seed=1) == gpu_check.queries(5, seed=1)
    assert len(gpu_check.passages(64)) == 64
