"""The configs the launcher writes: supervisord's, and what they say about the reranker (Envoy's is checked by
tests/validation/test_envoy_config.py)."""

from __future__ import annotations

import configparser
import json
from pathlib import Path

import pytest
from supervisor.datatypes import dict_of_key_value_pairs

from atelier.serving.settings import ROOT, Endpoints
from atelier.stack import models
from atelier.stack.launcher import Stack
from atelier.stack.supervisor import Program, render_config


def test_supervisord_config_escapes_and_stops_whole_process_groups(tmp_path: Path) -> None:
    program = Program(
        name="search",
        command=["/venv/bin/python", "-m", "services.search", "--flag=50%"],
        environment={"ATELIER_LOG_LEVEL": "INFO", "WEIRD": 'a "b" %c'},
        log_file=tmp_path / "search.log",
    )
    text = render_config(tmp_path, tmp_path, [program])
    parser = configparser.RawConfigParser()
    parser.read_string(text)
    section = parser["program:search"]
    assert section["command"] == "/venv/bin/python -m services.search --flag=50%%"
    assert section["autostart"] == "false"
    assert section["stopasgroup"] == "true" and section["killasgroup"] == "true"
    assert 'WEIRD="a \\"b\\" %%c"' in section["environment"]
    assert parser["unix_http_server"]["file"] == str(tmp_path / "supervisor.sock")


def test_a_comma_in_an_environment_value_survives_supervisords_parser(tmp_path: Path) -> None:
    program = Program("triton", ["x"], {"ATELIER_TRITON_MODELS": "text_embedding,reranker", "B": "1"}, tmp_path / "l")
    parser = configparser.RawConfigParser()
    parser.read_string(render_config(tmp_path, tmp_path, [program]))
    environment = dict_of_key_value_pairs(parser["program:triton"]["environment"].replace("%%", "%"))
    assert environment == {"ATELIER_TRITON_MODELS": "text_embedding,reranker", "B": "1"}


def _launch_settings(stack: Stack) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """(models Triton loads, Triton's environment, search's environment) in the written supervisord config,
    after `atelier up`'s preparation of the runtime model repository."""
    repository = models.model_repository(stack.state)
    models.seed_first_versions(repository, say=print)
    repository.refresh()
    stack._write_configs(stack.components())
    parser = configparser.RawConfigParser()
    parser.read_string(stack.supervisor.config.read_text())

    def environment(program: str) -> dict[str, str]:
        return dict_of_key_value_pairs(parser[f"program:{program}"]["environment"])

    argv = parser["program:triton"]["command"].split()
    assert argv[argv.index("--model-repository") + 1] == str(repository.path)
    loaded = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--load-model"]
    return loaded, environment("triton"), environment("search")


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Stack:
    for name in (
        "ATELIER_TRITON_MODELS",
        "ATELIER_RERANK_MODEL_DIR",
        "SEARCH_RERANK_ENABLED",
        "ATELIER_CLIP_MODEL_DIR",
        "VISION_ENABLED",
        "ATELIER_MODEL_REPOSITORY",
        "ATELIER_TRITON_INSTANCE_KIND",
        "ATELIER_TEXT_MODEL_DIR",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(models, "MODELS_DIR", tmp_path / "models")
    return Stack(Endpoints.from_env({"ATELIER_PORT_OFFSET": "3000"}), tmp_path / "state", say=print)


def fake_checkpoint(directory: Path, *extra: str) -> Path:
    """The files a checkpoint is checked for (not loadable: the launcher never loads one)."""
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps({"model_type": "bert"}))
    for name in ("model.safetensors", "vocab.txt", *extra):
        (directory / name).write_text("x")
    return directory


def test_without_weights_only_the_text_model_is_served_and_search_waits_for_the_rest(stack: Stack) -> None:
    loaded, triton_env, search_env = _launch_settings(stack)
    assert loaded == ["text_embedding"]
    record = models.model_repository(stack.state).model("text_embedding").record(1)
    assert record["source"] == models.PACKAGED_TEXT_WEIGHTS and list(record["files"]) == ["onnx/model.onnx"]
    assert not any(name.endswith("_MODEL_DIR") for name in triton_env)  # weights live in the repository
    # Search builds every stage and watches Triton for its model (services/search/__main__.py).
    assert search_env["SEARCH_RERANK_ENABLED"] == "1" and search_env["VISION_ENABLED"] == "1"
    assert models.features_off(loaded) == [
        "reranking waits for a reranker version: none published and no weights in "
        f"{models.MODELS_DIR / 'reranker'} (`atelier models train-reranker`, then "
        f"`atelier models publish reranker {models.MODELS_DIR / 'reranker'}`)",
        "vision waits for a clip version: none published and no weights in "
        f"{models.MODELS_DIR / 'clip'} (`atelier models train-clip`, then "
        f"`atelier models publish clip {models.MODELS_DIR / 'clip'}`)",
    ]


def test_configured_weights_become_version_1_once(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = fake_checkpoint(tmp_path / "bge-reranker-base")
    monkeypatch.setenv("ATELIER_RERANK_MODEL_DIR", str(weights))
    loaded, _, _ = _launch_settings(stack)
    assert loaded == ["reranker", "text_embedding"]
    folder = models.model_repository(stack.state).model("reranker")
    assert folder.versions() == [1] and folder.serving() == 1
    assert (folder.version_dir(1) / "checkpoint" / "model.safetensors").is_file()
    assert "specific {\n    versions: 1\n  }" in (folder.path / "config.pbtxt").read_text()
    # Later `atelier up`s keep what the repository serves: new weights come through `atelier models publish`.
    monkeypatch.setenv("ATELIER_RERANK_MODEL_DIR", str(fake_checkpoint(tmp_path / "other")))
    _launch_settings(stack)
    assert folder.versions() == [1] and folder.record(1)["source"] == str(weights)


def test_weights_that_are_not_a_checkpoint_are_not_published(stack: Stack, tmp_path: Path) -> None:
    (tmp_path / "models" / "reranker").mkdir(parents=True)
    (tmp_path / "models" / "reranker" / "config.json").write_text("{}")
    loaded, _, _ = _launch_settings(stack)
    assert "reranker" not in loaded
    assert models.model_repository(stack.state).model("reranker").versions() == []


def test_both_clip_towers_get_the_clip_checkpoint(stack: Stack, tmp_path: Path) -> None:
    fake_checkpoint(tmp_path / "models" / "clip", "preprocessor_config.json")
    loaded, _, search_env = _launch_settings(stack)
    assert {"clip_image", "clip_text"} <= set(loaded) and search_env["VISION_ENABLED"] == "1"
    assert models.features_off(loaded)[0].startswith("reranking waits")


def test_explicit_triton_models_and_switches_are_respected(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATELIER_TRITON_MODELS", "text_embedding")
    monkeypatch.setenv("SEARCH_RERANK_ENABLED", "0")
    monkeypatch.setenv("VISION_ENABLED", "0")
    loaded, _, search_env = _launch_settings(stack)
    assert loaded == ["text_embedding"]
    assert search_env["SEARCH_RERANK_ENABLED"] == "0" and search_env["VISION_ENABLED"] == "0"
    assert models.features_off(loaded) == [
        "reranking off: ATELIER_TRITON_MODELS does not name reranker",
        "vision off: ATELIER_TRITON_MODELS does not name clip_image and clip_text",
    ]


def test_the_instance_kind_and_the_repository_are_configurable(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATELIER_TRITON_INSTANCE_KIND", "gpu")
    monkeypatch.setenv("ATELIER_MODEL_REPOSITORY", str(tmp_path / "repository"))
    _launch_settings(stack)
    config = (tmp_path / "repository" / "text_embedding" / "config.pbtxt").read_text()
    assert "kind: KIND_GPU" in config and "KIND_CPU" not in config


def test_the_default_weights_dirs_are_under_models_in_the_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ATELIER_RERANK_MODEL_DIR", raising=False)  # the test stack sets it for its run
    monkeypatch.delenv("ATELIER_CLIP_MODEL_DIR", raising=False)
    assert models.RERANKER_WEIGHTS.directory() == ROOT / "models" / "reranker"
    assert models.CLIP_WEIGHTS.directory() == ROOT / "models" / "clip"


def test_the_first_run_job_is_part_of_the_stack_unless_switched_off(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ATELIER_FIRST_RUN_TRAINING", raising=False)
    [job] = [c for c in stack.components() if c.name == "first-run"]
    assert job.one_shot and job.tier == 2 and job.command[-1] == "atelier.model_repository.first_run"
    monkeypatch.setenv("ATELIER_FIRST_RUN_TRAINING", "0")
    assert "first-run" not in {c.name for c in stack.components()}
