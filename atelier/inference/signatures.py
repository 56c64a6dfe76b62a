"""Each Triton model's name and tensor names, declared once for the models and their clients.

The model code (atelier.inference) reads and answers these tensors; the clients (atelier.serving)
send and read them. Each model's triton_models/<model>/config.pbtxt declares the same names
(tests/unit/test_model_signatures.py checks it). Light on purpose: no torch, no Triton.
"""

from __future__ import annotations

from dataclasses import dataclass

# Tensor names. A name means the same thing in every model that has it: TEXT is UTF-8 text, one
# per row; EMBEDDING is one L2-normalised float32 vector per row.
TEXT = "TEXT"
MODE = "MODE"  # text_embedding: "query" or "passage", one per TEXT row
EMBEDDING = "EMBEDDING"
QUERY = "QUERY"
PASSAGE = "PASSAGE"
SCORE = "SCORE"  # reranker: the relevance probability of a (QUERY, PASSAGE) row
LOGIT = "LOGIT"  # reranker: its log-odds
IMAGE = "IMAGE"  # clip_image: an encoded JPEG, PNG or WebP image per row
FACTS = "FACTS"  # explainer: what one sentence may say of one article (its fields and the answer's signals)
EXPLANATION = "EXPLANATION"  # explainer: the sentence generated from a FACTS row


@dataclass(frozen=True)
class Signature:
    """A Triton model's name (its folder in triton_models/) and its input and output tensors, in order."""

    model: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


TEXT_EMBEDDING = Signature("text_embedding", inputs=(TEXT, MODE), outputs=(EMBEDDING,))
RERANKER = Signature("reranker", inputs=(QUERY, PASSAGE), outputs=(SCORE, LOGIT))
CLIP_IMAGE = Signature("clip_image", inputs=(IMAGE,), outputs=(EMBEDDING,))
CLIP_TEXT = Signature("clip_text", inputs=(TEXT,), outputs=(EMBEDDING,))
EXPLAINER = Signature("explainer", inputs=(FACTS,), outputs=(EXPLANATION,))

SIGNATURES = (TEXT_EMBEDDING, RERANKER, CLIP_IMAGE, CLIP_TEXT, EXPLAINER)
