"""The explainer model's pure parts: which weights it loads, the conversation it asks, the sentence it keeps."""

from __future__ import annotations

from pathlib import Path

import pytest

from atelier.inference.explainer import (
    EXAMPLES,
    PACKAGED_GGUF,
    SYSTEM,
    first_sentence,
    messages,
    resolve_checkpoint,
)
from atelier.inference.settings import PACKAGED_EXPLAINER, ExplainerSettings, SettingsError


def test_unset_it_is_the_packaged_smollm2_gguf() -> None:
    checkpoint = resolve_checkpoint(ExplainerSettings.from_env({}))
    assert checkpoint.gguf_file == PACKAGED_GGUF and (checkpoint.folder / PACKAGED_GGUF).is_file()
    assert checkpoint.described_as == PACKAGED_EXPLAINER


def test_a_folder_is_a_transformers_checkpoint_or_its_one_gguf_file(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "tokenizer.json").write_text("{}")
    assert resolve_checkpoint(ExplainerSettings(model_dir=tmp_path)).gguf_file is None
    gguf = tmp_path / "gguf"
    gguf.mkdir()
    (gguf / "model.Q4.gguf").write_bytes(b"GGUF")
    assert resolve_checkpoint(ExplainerSettings(model_dir=gguf)).gguf_file == "model.Q4.gguf"
    (gguf / "other.gguf").write_bytes(b"GGUF")
    with pytest.raises(SettingsError, match="2 GGUF files"):
        resolve_checkpoint(ExplainerSettings(model_dir=gguf))
    assert resolve_checkpoint(ExplainerSettings(model_dir=gguf, gguf_file="other.gguf")).gguf_file == "other.gguf"
    with pytest.raises(SettingsError, match=r"ATELIER_EXPLAINER_GGUF_FILE=missing\.gguf"):
        resolve_checkpoint(ExplainerSettings(model_dir=gguf, gguf_file="missing.gguf"))
    with pytest.raises(SettingsError, match="does not exist"):
        resolve_checkpoint(ExplainerSettings(model_dir=tmp_path / "nowhere"))


def test_the_conversation_is_the_instruction_the_examples_then_the_facts() -> None:
    asked = messages("Article: black dress.\nReasons: it is close to your search.")
    assert [turn["role"] for turn in asked] == ["system"] + ["user", "assistant"] * len(EXAMPLES) + ["user"]
    assert asked[0]["content"] == SYSTEM and (asked[1]["content"], asked[2]["content"]) == EXAMPLES[0]
    assert asked[-1]["content"].startswith("Article: black dress.")


@pytest.mark.parametrize(
    ("generated", "kept"),
    [
        ("  This black dress is popular.  You will love it.", "This black dress is popular."),
        ("Navy pants you searched for!\nMore text", "Navy pants you searched for!"),
        ("Cut at the token limit, no full stop", "Cut at the token limit, no full stop"),
        ("A 2.5 cm heel. More.", "A 2.5 cm heel."),
    ],
)
def test_only_the_first_sentence_is_kept(generated: str, kept: str) -> None:
    assert first_sentence(generated) == kept


def test_starting_from_the_cached_prefix_writes_what_the_whole_prompt_does() -> None:
    """The real packaged model: greedy sentences from the fixed turns' cache equal those of whole prompts."""
    from atelier.inference.explainer import CausalExplainer

    explainer = CausalExplainer(ExplainerSettings.from_env({"ATELIER_EXPLAINER_MAX_NEW_TOKENS": "12"}))
    facts = [
        'Article: red dress (Tilly Dress, women\'s).\nReasons: it matches "red" and "dress" from your search.',
        "Article: white t-shirt (Basic Tee, divided).\nReasons: you looked at it recently.",
    ]
    cached = explainer.generate(facts)
    assert explainer._prefix_cache is not None
    explainer._prefix_text, explainer._prefix_ids, explainer._prefix_cache = "", None, None
    assert cached == explainer.generate(facts) and all(cached)
