"""The reranker's last layer for the first token only: the full model's logits, for the architectures it
knows, and no such forward for the others (atelier/inference/first_token.py).

The BERT checkpoint is a 2-layer stand-in (packaged MiniLM weights, a seeded random head); the RoBERTa and
DistilBERT ones are tiny random models: right for comparing two ways of computing the same logits only.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    XLMRobertaConfig,
    XLMRobertaForSequenceClassification,
)

from atelier.inference import reranker as rr
from atelier.inference.first_token import first_token_forward
from atelier.offline.training.stand_in import build_stand_in_checkpoint

QUERIES = ["black slim fit jeans", "red dress", "floral summer dress in viscose for the beach", "coat"]
PASSAGES = [
    "Skinny jeans in black denim",
    "Oversized wool coat in camel. Colour: Beige. Garment: Coat. Department: Ladies Outerwear",
    "Slim fit jeans",
    "Floral summer dress in viscose",
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_stand_in_checkpoint(tmp_path_factory.mktemp("first-token"), num_hidden_layers=2)


@pytest.fixture(scope="module")
def batch(checkpoint: Path) -> dict[str, torch.Tensor]:
    # Pairs of different lengths: the padding of the shorter ones is masked as the model masks it.
    tokenizer = AutoTokenizer.from_pretrained(checkpoint, local_files_only=True)
    return dict(rr.tokenize_pairs(tokenizer, QUERIES, PASSAGES, 48))


def _same_logits(model: torch.nn.Module, batch: dict[str, torch.Tensor], tolerance: float) -> None:
    forward = first_token_forward(model.eval())
    assert forward is not None
    with torch.inference_mode():
        full = model(**batch).logits
        first = forward(batch)
    assert first.shape == full.shape
    torch.testing.assert_close(first, full, atol=tolerance, rtol=0)


def test_bert_logits_are_the_full_models(checkpoint: Path, batch: dict[str, torch.Tensor]) -> None:
    encoder = rr.CrossEncoder(rr.RerankerSettings(model_dir=checkpoint, quantize="none", precision="fp32"))
    assert encoder.first_token is not None and "first token only" in encoder.runtime
    _same_logits(encoder.model, batch, 1e-5)
    # The loaded model keeps every layer (benchmarks and tests call it whole).
    assert len(encoder.model.bert.encoder.layer) == 2 and encoder.model.bert.pooler is not None
    full = rr.CrossEncoder(rr.RerankerSettings(model_dir=checkpoint, quantize="none", precision="fp32"))
    full.first_token = None
    for got, want in zip(encoder.predict(QUERIES, PASSAGES), full.predict(QUERIES, PASSAGES), strict=True):
        assert got == pytest.approx(want, abs=1e-5)


def test_bf16_logits_stay_close(checkpoint: Path, batch: dict[str, torch.Tensor]) -> None:
    encoder = rr.CrossEncoder(rr.RerankerSettings(model_dir=checkpoint, quantize="none", precision="bf16"))
    _same_logits(encoder.model, batch, 0.05)


def test_xlm_roberta_logits_are_the_full_models(batch: dict[str, torch.Tensor]) -> None:
    torch.manual_seed(0)
    config = XLMRobertaConfig(
        vocab_size=31000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
        max_position_embeddings=80, num_labels=1,
    )  # fmt: skip
    model = XLMRobertaForSequenceClassification(config)
    _same_logits(model, {k: v for k, v in batch.items() if k != "token_type_ids"}, 1e-5)


def test_models_it_does_not_know_run_whole() -> None:
    small = {"vocab_size": 100, "num_labels": 1}
    distilbert = DistilBertForSequenceClassification(
        DistilBertConfig(dim=32, hidden_dim=64, n_layers=1, n_heads=2, **small)
    )
    assert first_token_forward(distilbert) is None
    relative = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, **small)
    relative.position_embedding_type = "relative_key"
    assert first_token_forward(BertForSequenceClassification(relative)) is None
