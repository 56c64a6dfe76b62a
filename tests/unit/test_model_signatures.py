"""triton_models/ agrees with atelier.inference: each config.pbtxt declares its signature's name and
tensors and only parameters its settings read, and each model.py serves atelier.inference's model."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from atelier.inference.settings import (
    ClipImageSettings,
    ClipTextSettings,
    ExplainerSettings,
    ModelSettings,
    RerankerSettings,
    TextEmbeddingSettings,
    parameter_name,
)
from atelier.inference.signatures import SIGNATURES, Signature
from atelier.serving.settings import ROOT

REPOSITORY = ROOT / "triton_models"
SETTINGS: dict[str, type[ModelSettings]] = {
    "text_embedding": TextEmbeddingSettings,
    "reranker": RerankerSettings,
    "clip_image": ClipImageSettings,
    "clip_text": ClipTextSettings,
    "explainer": ExplainerSettings,
}


def _config(model: str) -> str:
    """The model's config.pbtxt without its comments."""
    return re.sub(r"#[^\n]*", "", (REPOSITORY / model / "config.pbtxt").read_text())


def _tensors(config: str, kind: str) -> tuple[str, ...]:
    (block,) = re.findall(rf"^{kind}\s*\[(.*?)^\]", config, re.MULTILINE | re.DOTALL)
    return tuple(re.findall(r'name:\s*"([^"]+)"', block))


def _parameters(config: str) -> dict[str, str]:
    pattern = r'parameters\s*\{\s*key:\s*"([^"]+)"\s*value\s*\{\s*string_value:\s*"([^"]*)"\s*\}\s*\}'
    return dict(re.findall(pattern, config))


def test_every_model_of_the_repository_has_a_signature_and_settings() -> None:
    models = {path.parent.name for path in REPOSITORY.glob("*/config.pbtxt")}
    assert models == {signature.model for signature in SIGNATURES} == set(SETTINGS)
    # Every folder of the repository is a model: the shared code lives in atelier/inference.
    assert {path.name for path in REPOSITORY.iterdir() if path.is_dir()} == models


@pytest.mark.parametrize("signature", SIGNATURES, ids=lambda signature: signature.model)
def test_config_pbtxt_declares_the_signature(signature: Signature) -> None:
    config = _config(signature.model)
    assert re.findall(r'^name:\s*"([^"]+)"', config, re.MULTILINE) == [signature.model]
    assert _tensors(config, "input") == signature.inputs
    assert _tensors(config, "output") == signature.outputs


@pytest.mark.parametrize("model", sorted(SETTINGS))
def test_config_pbtxt_parameters_are_valid_settings(model: str) -> None:
    settings_cls = SETTINGS[model]
    parameters = _parameters(_config(model))
    assert parameters, f"{model}: no parameters found (the pattern above no longer matches config.pbtxt?)"
    known = {parameter_name(settings_cls, field) for field in settings_cls.model_fields}
    assert set(parameters) <= known, f"{model}: parameters no setting reads: {sorted(set(parameters) - known)}"
    from_config = settings_cls.from_env({}, parameters)
    for key, value in parameters.items():
        [field] = [field for field in settings_cls.model_fields if parameter_name(settings_cls, field) == key]
        assert str(getattr(from_config, field)) == value, key
        # The fallback a server without the variable gets is the default the code documents.
        assert str(getattr(settings_cls.from_env({}), field)) == value, f"{model}: {key} is not the default"


@pytest.mark.parametrize("model", sorted(SETTINGS))
def test_model_py_serves_the_atelier_inference_model(model: str) -> None:
    path = REPOSITORY / model / "1" / "model.py"
    tree = ast.parse(path.read_text())
    imports = [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]
    assert [(getattr(node, "module", None), [alias.name for alias in node.names]) for node in imports] == [
        (f"atelier.inference.{model}", ["TritonPythonModel"])
    ]
    module = importlib.import_module(f"atelier.inference.{model}")
    assert all(callable(getattr(module.TritonPythonModel, name)) for name in ("initialize", "execute", "finalize"))
    assert "sys.path" not in path.read_text() and Path(module.__file__).parent == ROOT / "atelier" / "inference"
