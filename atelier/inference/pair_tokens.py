"""The token ids of (query, passage) pairs, with each passage's ids kept between calls.

A search reranks its top candidates, and the same articles come back for search after search: their
passages are tokenised once and their ids kept (least recently used out), so that a call tokenises its
one query and the passages it has not seen. Tokenising 100 passages took ~8-12 ms of a 75 ms rerank of
100 pairs of 48 tokens in bf16 on 2 cores (docs/performance.md).

Only for WordPiece tokenizers with BERT's pair template (``[CLS] query [SEP] passage [SEP]``, token
types 0 then 1), whose ids of a passage are the same alone as in a pair; and only once the ids built
here equal the tokenizer's own for probe pairs. Any other tokenizer (XLM-RoBERTa's SentencePiece, byte
BPE, whose first word depends on what precedes it) tokenises every pair whole, as before.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import BatchEncoding


def cap_queries(tokenizer: Any, queries: Sequence[str], max_tokens: int) -> list[str]:
    """Each query cut after its ``max_tokens``-th token; shorter ones are returned unchanged."""
    unique = list(dict.fromkeys(queries))  # search sends one query for all its candidates
    offsets = tokenizer(unique, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    capped = {
        query: query if len(spans) <= max_tokens else query[: spans[max_tokens - 1][1]]
        for query, spans in zip(unique, offsets, strict=True)
    }
    return [capped[query] for query in queries]


def tokenize_pairs(tokenizer: Any, queries: Sequence[str], passages: Sequence[str], max_length: int) -> Any:
    """Padded PyTorch batch of (query, passage) pairs of at most ``max_length`` tokens, passages cut first."""
    room = max_length - tokenizer.num_special_tokens_to_add(pair=True)
    return tokenizer(
        cap_queries(tokenizer, queries, room // 2),
        list(passages),
        padding=True,
        truncation="only_second",
        max_length=max_length,
        return_tensors="pt",
    )


PROBES = (
    ("black jeans", "Slim Fit Jeans. Black Trousers, Denim. Slim-fit jeans in stretch denim with a high waist."),
    ("a very long query " * 8, "Short."),
    ("red", ""),
)


class PassageTokens:
    """The padded batch of (query, passage) pairs that ``tokenize_pairs`` makes, built from passage ids
    kept between calls."""

    def __init__(self, tokenizer: Any, max_length: int, cache_size: int) -> None:
        self._tokenizer = tokenizer
        self._max_length = max_length
        self._cls, self._sep, self._pad = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
        self._room = max_length - 3
        # functools' cache: the Triton image's Python (3.10) has no cachetools at the project's pin.
        self._passage_ids_of = functools.lru_cache(maxsize=cache_size)(self._tokenise_passage)

    @classmethod
    def for_tokenizer(cls, tokenizer: Any, max_length: int, cache_size: int) -> PassageTokens | None:
        """Kept passage ids for this tokenizer, or None where they would not give its own pairs."""
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if cache_size <= 0 or backend is None or type(backend.model).__name__ != "WordPiece":
            return None
        if None in (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id) or max_length < 5:
            return None
        kept = cls(tokenizer, max_length, cache_size)
        queries, passages = zip(*PROBES, strict=True)
        if not kept.same_as_tokenizer(queries, passages):
            return None
        kept._passage_ids_of.cache_clear()
        return kept

    def same_as_tokenizer(self, queries: Sequence[str], passages: Sequence[str]) -> bool:
        """Whether these pairs come out as the tokenizer makes them, tensor for tensor."""
        own, built = tokenize_pairs(self._tokenizer, queries, passages, self._max_length), self(queries, passages)
        return set(own.keys()) == set(built.keys()) and all(torch.equal(own[key], built[key]) for key in own)

    def __call__(self, queries: Sequence[str], passages: Sequence[str]) -> BatchEncoding:
        query_ids = self._query_ids(queries)
        passage_ids = [
            passage[: self._room - len(query)]
            for query, passage in zip(query_ids, self._passage_ids(passages), strict=True)
        ]
        lengths = [len(query) + len(passage) + 3 for query, passage in zip(query_ids, passage_ids, strict=True)]
        shape = (len(lengths), max(lengths))
        input_ids = np.full(shape, self._pad, dtype=np.int64)
        token_type_ids = np.zeros(shape, dtype=np.int64)
        attention_mask = np.zeros(shape, dtype=np.int64)
        for i, (query, passage, length) in enumerate(zip(query_ids, passage_ids, lengths, strict=True)):
            second = len(query) + 2  # [CLS] query [SEP]
            input_ids[i, 0], input_ids[i, second - 1], input_ids[i, length - 1] = self._cls, self._sep, self._sep
            input_ids[i, 1 : second - 1] = query
            input_ids[i, second : length - 1] = passage
            token_type_ids[i, second:length] = 1
            attention_mask[i, :length] = 1
        arrays = {"input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": attention_mask}
        return BatchEncoding({name: torch.from_numpy(array) for name, array in arrays.items()})

    def _query_ids(self, queries: Sequence[str]) -> list[np.ndarray]:
        """Each query's ids, cut as the pair tokenizer cuts them (after half the room)."""
        unique = list(dict.fromkeys(queries))
        capped = cap_queries(self._tokenizer, unique, self._room // 2)
        ids = self._tokenizer(capped, add_special_tokens=False)["input_ids"]
        by_query = {query: np.asarray(each, dtype=np.int64) for query, each in zip(unique, ids, strict=True)}
        return [by_query[query] for query in queries]

    @property
    def hits(self) -> int:
        return self._passage_ids_of.cache_info().hits

    @property
    def misses(self) -> int:
        return self._passage_ids_of.cache_info().misses

    def _passage_ids(self, passages: Sequence[str]) -> list[np.ndarray]:
        """Each passage's ids (at most the room of a pair), kept or tokenised now."""
        return [self._passage_ids_of(passage) for passage in passages]

    def _tokenise_passage(self, passage: str) -> np.ndarray:
        ids = self._tokenizer(passage, add_special_tokens=False)["input_ids"]
        return np.asarray(ids[: self._room], dtype=np.int32)
