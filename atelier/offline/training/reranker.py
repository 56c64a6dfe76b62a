"""Fine-tuning a cross-encoder reranker from all-MiniLM-L6-v2's encoder, reproducibly.

The model is `AutoModelForSequenceClassification` with one label over the first `layers`
encoder layers. Pairs are tokenised by the Triton reranker's own `tokenize_pairs`, at
`max_length` tokens (the reranker's default unless set), which a version published from the
checkpoint serves at (its training record says it), so training sees exactly what serving will. The loss is binary
cross-entropy of the logit against the soft label (grade / max_grade): sigmoid(logit) is then a
relevance in (0, 1) comparable across queries, which search multiplies by behaviour boosts.
A listwise term (softmax cross-entropy within each query's group, weight 1 by default) adds
ordering pressure; its target puts each candidate's NDCG gain (2**grade - 1) over the group's,
so a full match outweighs the near misses as much as it does in NDCG. Batches are whole query
groups.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

from atelier.inference.reranker import tokenize_pairs
from atelier.inference.settings import RerankerSettings
from atelier.offline.training.reranker_data import QueryGroup

BASE_CHECKPOINT = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class TrainSettings:
    layers: int  # encoder layers kept, of MiniLM's six
    seed: int
    epochs: int = 1
    queries_per_batch: int = 2
    learning_rate: float = 1e-4
    warmup: float = 0.1  # share of the steps with a rising learning rate
    weight_decay: float = 0.01
    listwise_weight: float = 1.0  # plus the pointwise BCE: NDCG-shaped, still calibrated
    # The word embeddings (two thirds of a 3-layer model's weights) stay as MiniLM learned
    # them: words only seen in training queries do not drift, and steps are ~15 % faster.
    freeze_word_embeddings: bool = True
    # Tokens per pair, in training and then in serving (the version takes it from training.json).
    max_length: int = RerankerSettings.model_fields["max_length"].default


@dataclass(frozen=True)
class TrainResult:
    steps: int
    pairs: int  # pairs seen, over every epoch
    final_loss: float  # mean loss over the last logging window
    seconds: float


def load_base(base_dir: Path, layers: int) -> tuple[Any, Any]:
    """(model, tokenizer): the first `layers` encoder layers of `base_dir` under a fresh one-label head."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging

    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # the expected "newly initialized: classifier" warning
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            base_dir, num_labels=1, num_hidden_layers=layers, local_files_only=True
        )
    finally:
        logging.set_verbosity(verbosity)
    return model, AutoTokenizer.from_pretrained(base_dir, local_files_only=True)


def _batches(groups: Sequence[QueryGroup], settings: TrainSettings) -> list[list[QueryGroup]]:
    """Every epoch's batches in training order: groups shuffled per epoch by the seed."""
    rng = random.Random(settings.seed)
    batches = []
    for _ in range(settings.epochs):
        order = list(groups)
        rng.shuffle(order)
        size = settings.queries_per_batch
        batches += [order[i : i + size] for i in range(0, len(order), size)]
    return batches


def ndcg_gains(group: QueryGroup) -> list[float]:
    """Each candidate's NDCG gain, 2**grade - 1 (atelier/offline/evaluation/metrics.py), from its label."""
    max_grade = group.query.max_grade
    return [2.0 ** round(pair.label * max_grade) - 1 for pair in group.pairs]


def _listwise(logits: torch.Tensor, gains: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Mean over groups with a relevant candidate of the softmax cross-entropy against gain / sum."""
    losses = [
        -(group_gains / group_gains.sum() * F.log_softmax(group_logits, dim=0)).sum()
        for group_logits, group_gains in zip(logits.split(sizes), gains.split(sizes), strict=True)
        if group_gains.sum() > 0
    ]
    return torch.stack(losses).mean() if losses else logits.sum() * 0.0


def train(
    model: Any,
    tokenizer: Any,
    groups: Sequence[QueryGroup],
    settings: TrainSettings,
    log: Callable[[str], None] = print,
    log_every: int = 25,
    progress: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Fine-tunes `model` in place: AdamW, linear warmup then decay to 0, a fixed number of steps;
    `progress(step, steps)` after each."""
    from transformers import get_linear_schedule_with_warmup

    length = settings.max_length
    if settings.freeze_word_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    batches = _batches(groups, settings)
    schedule = get_linear_schedule_with_warmup(optimizer, math.ceil(settings.warmup * len(batches)), len(batches))
    model.train()
    started = time.monotonic()
    window: list[float] = []
    pairs, final_loss = 0, math.nan
    for step, batch in enumerate(batches, start=1):
        flat = [pair for group in batch for pair in group.pairs]
        inputs = tokenize_pairs(tokenizer, [p.query for p in flat], [p.passage for p in flat], length)
        labels = torch.tensor([p.label for p in flat], dtype=torch.float32)
        logits = model(**inputs).logits.squeeze(-1)
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        if settings.listwise_weight:
            gains = torch.tensor([gain for group in batch for gain in ndcg_gains(group)], dtype=torch.float32)
            loss = loss + settings.listwise_weight * _listwise(logits, gains, [len(g.pairs) for g in batch])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        pairs += len(flat)
        window.append(loss.item())
        if progress is not None:
            progress(step, len(batches))
        if step % log_every == 0 or step == len(batches):
            log(
                f"step {step}/{len(batches)}  loss {sum(window) / len(window):.4f}  "
                f"lr {schedule.get_last_lr()[0]:.2e}  {time.monotonic() - started:.0f}s"
            )
            final_loss, window = sum(window) / len(window), []
    model.eval()
    return TrainResult(len(batches), pairs, final_loss, time.monotonic() - started)


def save_checkpoint(model: Any, tokenizer: Any, directory: Path) -> None:
    """save_pretrained of both: loadable by AutoModelForSequenceClassification and Triton's reranker."""
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
