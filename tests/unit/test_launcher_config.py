"""The configs the launcher writes: supervisord's and Envoy's, and what they say about the reranker."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest
from supervisor.datatypes import dict_of_key_value_pairs

from atelier.serving.settings import ROOT, Endpoints
from atelier.stack import components, envoy
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


def test_envoy_config_is_valid_for_envoy(tmp_path: Path) -> None:
    endpoints = Endpoints.from_env({"ATELIER_PORT_OFFSET": "3000"})
    config = tmp_path / "envoy.yaml"
    config.write_text(envoy.render_config(endpoints))
    envoy.validate(config)  # raises with Envoy's explanation when invalid
    assert "port_value: 11080" in config.read_text()


def _launch_settings(stack: Stack) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """(models Triton loads, Triton's environment, search's environment) in the written supervisord config."""
    stack._write_configs(stack.components())
    parser = configparser.RawConfigParser()
    parser.read_string(stack.supervisor.config.read_text())

    def environment(program: str) -> dict[str, str]:
        return dict_of_key_value_pairs(parser[f"program:{program}"]["environment"])

    argv = parser["program:triton"]["command"].split()
    models = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--load-model"]
    return models, environment("triton"), environment("search")


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Stack:
    for name in (
        "ATELIER_TRITON_MODELS",
        "ATELIER_RERANK_MODEL_DIR",
        "SEARCH_RERANK_ENABLED",
        "ATELIER_CLIP_MODEL_DIR",
        "VISION_ENABLED",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(components, "MODELS_DIR", tmp_path / "models")
    return Stack(Endpoints.from_env({"ATELIER_PORT_OFFSET": "3000"}), tmp_path / "state", say=print)


def test_the_reranker_loads_only_when_its_weights_dir_has_a_config(stack: Stack, tmp_path: Path) -> None:
    weights = tmp_path / "models" / "reranker"
    weights.mkdir(parents=True)  # empty: no weights yet
    models, triton_env, search_env = _launch_settings(stack)
    assert "reranker" not in models and "text_embedding" in models
    assert "ATELIER_RERANK_MODEL_DIR" not in triton_env
    assert search_env["SEARCH_RERANK_ENABLED"] == "0"
    reason = components.RERANKER_WEIGHTS.off_reason(models)
    assert reason == f"reranking off: no reranker weights in {weights} (run `atelier models train-reranker`)"

    (weights / "config.json").write_text("{}")
    models, triton_env, search_env = _launch_settings(stack)
    assert {"reranker", "text_embedding"} <= set(models)
    assert triton_env["ATELIER_RERANK_MODEL_DIR"] == str(weights)
    assert search_env["SEARCH_RERANK_ENABLED"] == "1"
    assert components.RERANKER_WEIGHTS.off_reason(models) is None


def test_the_reranker_weights_dir_comes_from_the_environment(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert components.RERANKER_WEIGHTS.directory() == tmp_path / "models" / "reranker"
    elsewhere = tmp_path / "bge-reranker-base"
    elsewhere.mkdir()
    (elsewhere / "config.json").write_text("{}")
    monkeypatch.setenv("ATELIER_RERANK_MODEL_DIR", str(elsewhere))
    models, triton_env, search_env = _launch_settings(stack)
    assert "reranker" in models and triton_env["ATELIER_RERANK_MODEL_DIR"] == str(elsewhere)
    assert search_env["SEARCH_RERANK_ENABLED"] == "1"


def test_the_default_reranker_weights_dir_is_models_reranker_under_the_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ATELIER_RERANK_MODEL_DIR", raising=False)  # the test stack sets it for its run
    monkeypatch.delenv("ATELIER_TRITON_MODELS", raising=False)
    assert components.RERANKER_WEIGHTS.directory() == ROOT / "models" / "reranker"
    message = components.RERANKER_WEIGHTS.off_reason([])
    if not (ROOT / "models" / "reranker" / "config.json").is_file():
        assert message is not None and "no reranker weights in models/reranker" in message


def test_explicit_triton_models_are_respected(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATELIER_TRITON_MODELS", "reranker")  # no weights: Triton will say so
    models, triton_env, search_env = _launch_settings(stack)
    assert models == ["reranker"]
    assert "ATELIER_RERANK_MODEL_DIR" in triton_env and search_env["SEARCH_RERANK_ENABLED"] == "1"

    monkeypatch.setenv("ATELIER_TRITON_MODELS", "text_embedding")
    models, _, search_env = _launch_settings(stack)
    assert models == ["text_embedding"] and search_env["SEARCH_RERANK_ENABLED"] == "0"
    assert components.features_off(models) == [
        "reranking off: ATELIER_TRITON_MODELS does not name reranker",
        "vision off: ATELIER_TRITON_MODELS does not name clip_image and clip_text",
    ]


def test_an_explicit_search_rerank_switch_is_kept_unless_there_is_no_reranker(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEARCH_RERANK_ENABLED", "1")
    assert _launch_settings(stack)[2]["SEARCH_RERANK_ENABLED"] == "0"  # no weights: nothing to call
    weights = tmp_path / "models" / "reranker"
    weights.mkdir(parents=True)
    (weights / "config.json").write_text("{}")
    monkeypatch.setenv("SEARCH_RERANK_ENABLED", "0")
    assert _launch_settings(stack)[2]["SEARCH_RERANK_ENABLED"] == "0"


def test_vision_loads_both_clip_towers_only_when_the_clip_weights_exist(stack: Stack, tmp_path: Path) -> None:
    models, triton_env, search_env = _launch_settings(stack)
    assert not {"clip_image", "clip_text"} & set(models)
    assert "ATELIER_CLIP_MODEL_DIR" not in triton_env and search_env["VISION_ENABLED"] == "0"
    assert (
        f"vision off: no clip weights in {tmp_path / 'models' / 'clip'} (run `atelier models train-clip`)"
        in components.features_off(models)
    )

    weights = tmp_path / "models" / "clip"
    weights.mkdir(parents=True)
    (weights / "config.json").write_text("{}")
    models, triton_env, search_env = _launch_settings(stack)
    assert {"clip_image", "clip_text"} <= set(models)
    assert triton_env["ATELIER_CLIP_MODEL_DIR"] == str(weights) and search_env["VISION_ENABLED"] == "1"


def test_vision_can_be_switched_off_with_weights_present(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "models" / "clip").mkdir(parents=True)
    (tmp_path / "models" / "clip" / "config.json").write_text("{}")
    monkeypatch.setenv("VISION_ENABLED", "0")
    assert _launch_settings(stack)[2]["VISION_ENABLED"] == "0"
