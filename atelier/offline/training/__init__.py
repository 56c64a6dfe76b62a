"""Training the models the project cannot download: the reranker (`atelier models train-reranker`)."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from atelier.serving.settings import ROOT


def triton_model_code(model: str) -> ModuleType:
    """triton_models/<model>/1/model.py imported outside Triton, as the module ``<model>_model``.

    Training uses the serving code itself (the text encoder, the reranker's pair tokenisation and
    loader), so what is trained is tokenised and loaded exactly as Triton will.
    """
    name = f"{model}_model"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "triton_models" / model / "1" / "model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module
