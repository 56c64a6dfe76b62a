"""A cross-encoder's logits from its first token only, computed as the model would, minus the work
nobody reads.

A sequence-classification head reads the last layer's state of the first token ([CLS], <s>) and nothing
else. So the last layer needs its keys and values for every token, but its query, attention output and
feed-forward block for that one token: for a 3-layer model that is ~28 % of a forward pass saved, and
the logits are the full model's (the unit test compares them). The layers before it run as the model
runs them (its own encoder with the last layer left out); the last one is written here from its
modules, whose names BERT, RoBERTa and XLM-RoBERTa share. Any other architecture, or position
embeddings that are not absolute, get no such forward (None) and run the full model.

The trunk is a shallow copy of the base model sharing every weight; the loaded model is not changed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

Forward = Callable[[dict[str, torch.Tensor]], torch.Tensor]

# Sequence-classification models whose head reads the first token, by class name: how to apply the head
# to that token's last state ([n, 1, hidden]).
HEADS: dict[str, Callable[[Any, torch.Tensor], torch.Tensor]] = {
    # pooler (dense + tanh of [:, 0]) -> dropout -> classifier
    "BertForSequenceClassification": lambda model, state: model.classifier(model.dropout(model.bert.pooler(state))),
    # classifier: dense + tanh + out_proj of [:, 0]
    "RobertaForSequenceClassification": lambda model, state: model.classifier(state),
    "XLMRobertaForSequenceClassification": lambda model, state: model.classifier(state),
}


def first_token_forward(model: nn.Module) -> Forward | None:
    """A function of a tokenised batch giving ``model``'s logits [n, labels], its last layer computed for
    the first token only; None when ``model`` is not one it knows (run the full model then)."""
    head = HEADS.get(type(model).__name__)
    base = getattr(model, "base_model", None)
    config = getattr(model, "config", None)
    if head is None or base is None or getattr(config, "position_embedding_type", "absolute") != "absolute":
        return None
    layers = list(base.encoder.layer)
    if not layers or not _has_parts(layers[-1]):
        return None
    trunk = _without_last_layer(base)
    last = layers[-1]

    def forward(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = trunk(**batch).last_hidden_state
        return head(model, _first_token_layer(last, hidden, batch["attention_mask"]))

    return forward


def _has_parts(layer: nn.Module) -> bool:
    attention = getattr(layer, "attention", None)
    names = ("query", "key", "value", "num_attention_heads", "attention_head_size")
    return (
        attention is not None
        and all(hasattr(attention.self, name) for name in names)
        and all(hasattr(attention.output, name) for name in ("dense", "LayerNorm"))
        and hasattr(layer, "intermediate")
        and all(hasattr(layer.output, name) for name in ("dense", "LayerNorm"))
    )


def _without_last_layer(base: nn.Module) -> nn.Module:
    """The base model with its encoder's last layer and its pooler left out, sharing every weight."""
    encoder = copy.copy(base.encoder)
    encoder._modules = dict(base.encoder._modules)
    encoder.layer = nn.ModuleList(list(base.encoder.layer)[:-1])
    trunk = copy.copy(base)
    trunk._modules = dict(base._modules)
    trunk.encoder = encoder
    trunk.pooler = None
    return trunk


def _first_token_layer(layer: nn.Module, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``layer``'s output state of the first token, [n, 1, hidden]: self-attention of that token over every
    (unmasked) token, then the feed-forward block, each with its residual and LayerNorm."""
    attention = layer.attention.self
    n, tokens, _ = hidden.shape
    heads, size = attention.num_attention_heads, attention.attention_head_size

    def split(states: torch.Tensor) -> torch.Tensor:  # [n, t, heads * size] -> [n, heads, t, size]
        return states.view(n, -1, heads, size).transpose(1, 2)

    first = hidden[:, :1]
    query = split(attention.query(first))
    key, value = split(attention.key(hidden)), split(attention.value(hidden))
    mask = attention_mask.to(torch.bool).view(n, 1, 1, tokens)
    context = nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask)
    context = context.transpose(1, 2).reshape(n, 1, heads * size)
    attended = layer.attention.output.LayerNorm(layer.attention.output.dense(context) + first)
    intermediate = layer.intermediate(attended)
    return layer.output.LayerNorm(layer.output.dense(intermediate) + attended)
