"""The reranker model: (query, passage) pairs in, cross-encoder relevance out.

Any sequence-classification cross-encoder checkpoint of a local directory: BAAI/bge-reranker-base
(XLM-RoBERTa) in production, BERT-based ones too. One forward pass per ``execute()`` over every
pair of every request of the dynamic batch; search sends the top-M candidates of one query as one
request of M rows. On torch, the last layer runs for the first token only, the one the head reads
(first_token.py: the same logits, ~28 % less work for a 3-layer model).

Outputs, per pair:
  SCORE  the relevance probability in (0, 1): the sigmoid of the logit when the checkpoint has one
         label; the softmax probability of the last class when it has two (other label counts
         are refused at load).
  LOGIT  its log-odds: the raw logit for one label, last minus first logit for two, so that
         SCORE == sigmoid(LOGIT) either way.

A pair is at most ``max_length`` tokens. The passage is cut, never the query, unless the query
alone would take more than half of them: such a query (far longer than a search query) keeps that
half, since cutting only the passage cannot fit it and would fail the whole batch.

Settings (``RerankerSettings``, atelier/inference/settings.py), read once at load: the
environment variable wins, then the config.pbtxt parameter (the variable's name without
``ATELIER_``, lower case), then the default.

  ATELIER_RERANK_MODEL_DIR    rerank_model_dir    local checkpoint directory (required)
  ATELIER_RERANK_MAX_LENGTH   rerank_max_length   tokens per pair (default 48: a query, the passage's name and
                                                  attributes)
  ATELIER_RERANK_NUM_THREADS  rerank_num_threads  torch intra-op threads per instance (default 1;
                                                  config.pbtxt runs two instances)
  ATELIER_RERANK_PASSAGE_CACHE rerank_passage_cache passages whose token ids are kept between calls
                                                  (default 20000; WordPiece tokenizers only, pair_tokens.py)
  ATELIER_RERANK_QUANTIZE     rerank_quantize     ``int8``: dynamic int8 quantisation of the encoder's
                                                  Linear layers at load (CPU in fp32 only, ~2x faster,
                                                  see ``quantize_int8``; skipped on a GPU or in fp16);
                                                  ``none``: the precision's own weights (default int8)
  ATELIER_RERANK_PRECISION    rerank_precision    fp16 | bf16 | fp32 | auto (default auto: fp16 on a GPU
                                                  instance; on CPU bf16 where it has AMX tiles, whose
                                                  bf16 matrix products beat int8 ones, unless the runtime
                                                  is onnx; fp32 elsewhere)
  ATELIER_RERANK_RUNTIME      rerank_runtime      torch | onnx | auto (default torch; onnx: ONNX Runtime
                                                  on the version's exported model of the quantize mode,
                                                  CPU instances in fp32 only, see onnx_runtime.py;
                                                  auto: onnx where it can run, torch otherwise)

A version folder's settings.json and checkpoint/ win over all of these (settings.py). The model
runs on the device of its instance group (KIND_GPU: CUDA) in its precision; the log-odds and the
sigmoid are fp32 (atelier/inference/triton_model.py).

The pure helpers (pair tokenisation, activation, ``CrossEncoder``) do not need Triton: unit
tests, benchmarks and the reranker's training import this module.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from atelier.inference import onnx_runtime
from atelier.inference.cpu_features import has_amx_bf16
from atelier.inference.first_token import Forward, first_token_forward
from atelier.inference.onnx_runtime import OnnxSession, exported_file
from atelier.inference.pair_tokens import PassageTokens, tokenize_pairs
from atelier.inference.pair_tokens import cap_queries as cap_queries  # re-exported: tests read it here
from atelier.inference.request_batch import decode_rows
from atelier.inference.settings import RerankerSettings, SettingsError, required_checkpoint_dir
from atelier.inference.settings import config_parameters as config_parameters  # re-exported: tests read it here
from atelier.inference.signatures import LOGIT, PASSAGE, QUERY, RERANKER, SCORE
from atelier.inference.triton_model import CPU, TritonModel, model_dtype, place, precision_name, token_limit

MODEL_DIR_HELP = (
    "run `atelier models train-reranker`, or point it at a local sequence-classification cross-encoder "
    "checkpoint directory, e.g. a copy of BAAI/bge-reranker-base (weights are never downloaded)"
)


def resolve_model_dir(settings: RerankerSettings) -> Path:
    """The checkpoint directory to load, checked to hold a config and a tokenizer."""
    return required_checkpoint_dir(settings, MODEL_DIR_HELP)


def log_odds(logits: torch.Tensor) -> torch.Tensor:
    """[n, num_labels] classifier logits to [n] log-odds of relevance (see the module docstring)."""
    if logits.ndim != 2 or logits.shape[1] not in (1, 2):
        raise ValueError(f"a cross-encoder has 1 or 2 labels, got logits of shape {tuple(logits.shape)}")
    if logits.shape[1] == 1:
        return logits[:, 0]
    # softmax([a, b])[1] == sigmoid(b - a)
    return logits[:, 1] - logits[:, 0]


HEAD_MODULES = frozenset({"pooler", "classifier"})


def quantize_int8(model: Any) -> Any:
    """Dynamic int8 quantisation of the encoder's Linear layers, weights per output channel.

    The matrix products of the encoder are most of a CPU forward pass and run ~2x faster; the
    pooler and classifier head cost nothing and stay in full precision, since the score is read
    straight off them. With per-channel weights and the head kept, rankings stay within ~0.001
    NDCG@10 of full precision, against ~0.007 for every layer per tensor (docs/performance.md).
    """
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    names = {
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and not HEAD_MODULES.intersection(name.split("."))
    }
    return quantize_dynamic(model, dict.fromkeys(names, per_channel_dynamic_qconfig))


def cpu_dtype(runtime: str) -> torch.dtype:
    """The precision ``auto`` means on a CPU: bf16 where AMX tiles multiply it (2.45x int8's speed on 100
    pairs, docs/performance.md), unless ONNX Runtime, fp32-only here, was asked for; fp32 elsewhere."""
    return torch.bfloat16 if has_amx_bf16() and runtime != "onnx" else torch.float32


def quantization(quantize: str, device: torch.device, dtype: torch.dtype) -> str | None:
    """Why ``quantize`` is not applied on ``device`` in ``dtype``, or None when it is: int8 dynamic
    quantisation has CPU kernels only, and quantises fp32 Linear layers."""
    if quantize != "int8":
        return None
    if device.type != "cpu":
        return f"skipped on {device}: CPU only"
    if dtype != torch.float32:
        return f"skipped in {precision_name(dtype)}: fp32 only"
    return None


def onnx_unavailable(runtime: str, device: torch.device, dtype: torch.dtype, exported: Path | None) -> str | None:
    """Why the ONNX Runtime path cannot serve (the transformers model does), or None when it can; a
    SettingsError when ``runtime`` is onnx and it cannot."""
    where = None if device.type == "cpu" and dtype == torch.float32 else f"{device} in {precision_name(dtype)}"
    return onnx_runtime.onnx_unavailable("ATELIER_RERANK_RUNTIME", runtime, where, exported)


class CrossEncoder:
    """A sequence-classification checkpoint with its tokenizer, on ``device`` in the settings' precision
    (int8 on CPU as ``quantize`` says), run by ONNX Runtime or torch as ``runtime`` says; no Triton
    involved."""

    def __init__(self, settings: RerankerSettings, device: torch.device | str = CPU) -> None:
        self.settings = settings
        self.model_dir = resolve_model_dir(settings)  # before the slow import: fail fast
        self.device = torch.device(device)
        self.dtype = model_dtype(settings.precision, self.device, cpu_auto=cpu_dtype(settings.runtime))
        where = f"ATELIER_RERANK_MODEL_DIR={self.model_dir}"

        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
            self.model, loading = AutoModelForSequenceClassification.from_pretrained(
                self.model_dir, local_files_only=True, output_loading_info=True
            )
        except (OSError, ValueError) as exc:
            raise SettingsError(f"{where}: cannot load the checkpoint: {exc}") from exc
        self.model.eval()
        config = self.model.config
        # A checkpoint without a trained classification head (an embedding model, say) would
        # load with a random one and score at random.
        if loading["missing_keys"]:
            raise SettingsError(
                f"{where}: not a cross-encoder, the checkpoint lacks {', '.join(sorted(loading['missing_keys']))}"
            )
        if config.num_labels not in (1, 2):
            raise SettingsError(f"{where}: a cross-encoder has 1 or 2 labels, this checkpoint has {config.num_labels}")
        if not self.tokenizer.is_fast:
            raise SettingsError(f"{where}: no fast tokenizer (tokenizer.json) for this checkpoint")
        limit = token_limit(config, self.tokenizer)
        if limit is not None and settings.max_length > limit:
            raise SettingsError(f"ATELIER_RERANK_MAX_LENGTH={settings.max_length} exceeds this checkpoint's {limit}")
        if settings.max_length - self.tokenizer.num_special_tokens_to_add(pair=True) < 2:
            raise SettingsError(f"ATELIER_RERANK_MAX_LENGTH={settings.max_length} leaves no room for a pair")
        self.passage_tokens = PassageTokens.for_tokenizer(self.tokenizer, settings.max_length, settings.passage_cache)
        self.architecture = type(self.model).__name__
        self.num_labels: int = config.num_labels
        skipped = quantization(settings.quantize, self.device, self.dtype)
        # What the load log line says: int8, none, or int8 skipped and why.
        self.quantization = settings.quantize if skipped is None else f"{settings.quantize} {skipped}"
        exported = exported_file(settings.export_dir, settings.quantize)
        torch_because = onnx_unavailable(settings.runtime, self.device, self.dtype, exported)
        self.session: OnnxSession | None = None
        self.first_token: Forward | None = None
        if torch_because is None and exported is not None:
            self.session = OnnxSession(exported, settings.num_threads)
            self.model = None  # the exported graph holds the weights
            self.runtime = f"onnxruntime ({exported.parent.name}/{exported.name})"
            return
        self.model = place(self.model, self.device, self.dtype)
        if settings.quantize == "int8" and skipped is None:
            self.model = quantize_int8(self.model)
        self.first_token = first_token_forward(self.model)
        last_layer = "the last layer for the first token only" if self.first_token else "the full model"
        self.runtime = f"torch ({torch_because}; {last_layer})"

    def predict(self, queries: Sequence[str], passages: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(relevance probability, log-odds) of each pair, two [n] float32 arrays; one forward pass."""
        if len(queries) != len(passages):
            raise ValueError(f"{len(queries)} queries but {len(passages)} passages")
        if not queries:
            return np.empty(0, dtype=np.float32), np.empty(0, dtype=np.float32)
        if self.passage_tokens is not None:
            batch: Any = self.passage_tokens(queries, passages)
        else:
            batch = tokenize_pairs(self.tokenizer, queries, passages, self.settings.max_length)
        with torch.inference_mode():
            if self.session is not None:
                logits = torch.from_numpy(self.session(batch))
            elif self.first_token is not None:
                logits = self.first_token(batch.to(self.device))
            else:
                logits = self.model(**batch.to(self.device)).logits
            odds = log_odds(logits.float()).cpu()
            return torch.sigmoid(odds).numpy(), odds.numpy()

    def score(self, queries: Sequence[str], passages: Sequence[str]) -> np.ndarray:
        """[n] float32 relevance probability of each (query, passage) pair."""
        return self.predict(queries, passages)[0]

    def warm_up(self, most_rows: int) -> float:
        """Scores a batch of each size from 1 to `most_rows` pairs of max_length tokens, once; the seconds
        it took. On CPU oneDNN builds its kernels for each shape it meets: the first batch of a size took
        ~20 ms more than the next (1 thread, bf16), paid by searches in the first minutes after a load."""
        started = time.perf_counter()
        passage = " ".join(["fabric"] * self.settings.max_length)  # a token a word at least: cut at max_length
        for rows in range(1, most_rows + 1):
            self.predict(["warm up"] * rows, [passage] * rows)
        return time.perf_counter() - started


class TritonPythonModel(TritonModel):
    signature = RERANKER
    settings_class = RerankerSettings
    encoder_class = CrossEncoder

    def describe(self, settings: RerankerSettings) -> str:
        return (
            f"{self.encoder.architecture}, "
            f"{self.encoder.num_labels} label(s), max_length {settings.max_length}, "
            f"{settings.num_threads} thread(s), {self.passage_tokens()}, "
            f"quantize {self.encoder.quantization}, runtime {self.encoder.runtime}"
        )

    def passage_tokens(self) -> str:
        if self.encoder.passage_tokens is None:
            return "every pair tokenised whole"
        return f"token ids of up to {self.encoder.settings.passage_cache} passages kept"

    def warm_up(self, max_batch_size: int) -> str:
        # Search sends requests of up to max_batch_size pairs (atelier/serving/reranking.py); pairs cut at
        # max_length, as most catalogue passages are, make batches of those shapes.
        if max_batch_size <= 0:
            return ""
        seconds = self.encoder.warm_up(max_batch_size)
        return f"warmed up on batches of 1-{max_batch_size} pairs in {seconds:.1f} s"

    @staticmethod
    def decode(request: Any) -> list[tuple[str, ...]]:
        return decode_rows(request, QUERY, PASSAGE)

    def compute(self, rows: Sequence[tuple[str, ...]]) -> dict[str, np.ndarray]:
        scores, odds = self.encoder.predict([query for query, _ in rows], [passage for _, passage in rows])
        return {SCORE: scores.reshape(-1, 1), LOGIT: odds.reshape(-1, 1)}
