"""The Triton models' settings: pydantic-settings models on atelier.serving.settings.

A model's setting is its environment variable ``ATELIER_<NAME>`` when set, else the config.pbtxt
parameter ``<name>`` (the variable's name without ``ATELIER_``, lower case), else its default. A
blank value counts as unset, but for a field listed in ``verbatim`` (taken as it is, spaces kept).
A bad value fails the model's load with a SettingsError naming the variable or the parameter it
came from: ``ATELIER_TEXT_MAX_LENGTH must be a positive integer, got 'long'``.

Each model reads its settings once, in ``TritonPythonModel.initialize``:
``TextEmbeddingSettings.from_env(parameters=config_parameters(model_config))`` (the server's
environment, then the model's config.pbtxt); tests give both as mappings. Light on purpose
(pydantic only): the settings can be listed and checked without torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from atelier.serving.settings import Settings, SettingsError, given_values, variable_name

if TYPE_CHECKING:
    from typing import Self

# Files of which a checkpoint directory needs at least one to build its tokenizer.
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model")


def config_parameters(model_config: Mapping[str, Any]) -> dict[str, str]:
    """config.pbtxt ``parameters`` (as Triton gives them in JSON) as a plain mapping."""
    return {key: value.get("string_value", "") for key, value in model_config.get("parameters", {}).items()}


def check_checkpoint_dir(model_dir: Path, where: str, tokenizer: bool = True, files: Sequence[str] = ()) -> Path:
    """``model_dir`` when it holds a config.json, a tokenizer (unless not ``tokenizer``) and ``files``;
    else a SettingsError starting with ``where``."""
    if not model_dir.is_dir():
        raise SettingsError(f"{where}: directory does not exist")
    for name in ("config.json", *files):
        if not (model_dir / name).is_file():
            raise SettingsError(f"{where}: no {name} in {model_dir}")
    if tokenizer and not any((model_dir / name).is_file() for name in TOKENIZER_FILES):
        raise SettingsError(f"{where}: no tokenizer in {model_dir} (none of {', '.join(TOKENIZER_FILES)})")
    return model_dir


def required_checkpoint_dir(
    settings: Settings, help_text: str, tokenizer: bool = True, files: Sequence[str] = ()
) -> Path:
    """The settings' ``model_dir``, checked as ``check_checkpoint_dir`` does; a SettingsError naming its
    variable, with ``help_text``, when it is not set."""
    variable = variable_name(type(settings), "model_dir")
    model_dir = getattr(settings, "model_dir", None)
    if model_dir is None:
        raise SettingsError(f"{variable} is not set: {help_text}")
    return check_checkpoint_dir(model_dir, f"{variable}={model_dir}", tokenizer=tokenizer, files=files)


# --- the config.pbtxt parameters, below the environment ------------------------------------


@dataclass
class _Reading:
    """The config.pbtxt parameters of one ``from_env``, and the fields they set (for the errors)."""

    parameters: Mapping[str, str]
    from_parameters: set[str]


_READING: ContextVar[_Reading | None] = ContextVar("model_settings_reading", default=None)


def parameter_name(settings_cls: type[BaseSettings], field_name: str) -> str:
    """A field's config.pbtxt parameter: its variable's name without ATELIER_, lower case."""
    return variable_name(settings_cls, field_name).removeprefix("ATELIER_").lower()


class _ConfigParameters(PydanticBaseSettingsSource):
    """Each field that no source before it set (code, environment), from its config.pbtxt parameter."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        reading, key = _READING.get(), parameter_name(self.settings_cls, field_name)
        return (None if reading is None else reading.parameters.get(key)), key, False

    def __call__(self) -> dict[str, Any]:
        reading = _READING.get()
        if reading is None:
            return {}
        values = given_values(self, skip=lambda field_name, field: field_name in self.current_state)
        reading.from_parameters.update(values)
        return values


# --- values ------------------------------------------------------------------------------

# Errors of the validators below: "<where> <message>, got <value>".
_OWN_ERRORS = frozenset({"positive_int", "one_of"})


def _positive_int(value: Any) -> Any:
    """A count of at least 1, from an int or its decimal text; None passes (an optional count)."""
    if value is None:
        return value
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise PydanticCustomError("positive_int", "must be a positive integer") from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PydanticCustomError("positive_int", "must be a positive integer")
    return value


def _one_of(*choices: str) -> BeforeValidator:
    """One of ``choices``, in any case."""

    def check(value: Any) -> Any:
        choice = value.strip().lower() if isinstance(value, str) else value
        if choice not in choices:
            raise PydanticCustomError("one_of", "must be one of {choices}", {"choices": ", ".join(choices)})
        return choice

    return BeforeValidator(check)


def _expand_user(path: Path | None) -> Path | None:
    return None if path is None else path.expanduser()


Count = Annotated[int, BeforeValidator(_positive_int)]
CheckpointDir = Annotated[Path | None, AfterValidator(_expand_user)]


class ModelSettings(Settings):
    """Base of a Triton model's settings: environment, then config.pbtxt parameters, then defaults.

    Values given in code (``RerankerSettings(model_dir=checkpoint)``: training, tests) win over all three.
    """

    lower_sources = (_ConfigParameters,)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, parameters: Mapping[str, str] | None = None) -> Self:
        """The settings from ``env`` (default: os.environ), then the config.pbtxt ``parameters``, then defaults."""
        token = _READING.set(_Reading(dict(parameters or {}), set()))
        try:
            return super().from_env(env)
        finally:
            _READING.reset(token)

    @classmethod
    def describe(cls, error: ValidationError) -> str:
        """Each bad value by the variable or the config.pbtxt parameter it came from."""
        reading = _READING.get()
        problems = []
        for problem in error.errors():
            if not problem["loc"]:
                problems.append(f"{cls.__name__}: {problem['msg']}")
                continue
            field_name = str(problem["loc"][0])
            if reading is not None and field_name in reading.from_parameters:
                where = f"config.pbtxt parameter {parameter_name(cls, field_name)}"
            else:
                where = variable_name(cls, field_name)
            given = problem.get("input")
            if problem["type"] in _OWN_ERRORS:
                problems.append(f"{where} {problem['msg']}, got {given!r}")
            else:
                shown = f" (got {given!r})" if isinstance(given, str | int | float) else ""
                problems.append(f"{where}: {problem['msg']}{shown}")
        return "; ".join(problems)


# --- text_embedding ------------------------------------------------------------------------

POOLINGS = ("cls", "mean")
BGE_QUERY_PREFIX = "Represent this sentence for searching relevant passages: "


@dataclass(frozen=True)
class Preset:
    checkpoint: str  # the hub name, for messages: the weights are never downloaded
    pooling: str
    query_prefix: str


PRESETS = {
    "minilm": Preset("sentence-transformers/all-MiniLM-L6-v2", pooling="mean", query_prefix=""),
    "bge-small": Preset("BAAI/bge-small-en-v1.5", pooling="cls", query_prefix=BGE_QUERY_PREFIX),
}


class TextEmbeddingSettings(ModelSettings):
    """The text_embedding model (atelier/inference/text_embedding.py)."""

    model_config = SettingsConfigDict(env_prefix="ATELIER_TEXT_")
    verbatim = frozenset({"query_prefix"})

    model: Annotated[str, _one_of(*PRESETS)] = "minilm"
    """Checkpoint preset: minilm (all-MiniLM-L6-v2, packaged) or bge-small (BAAI/bge-small-en-v1.5)."""
    model_dir: CheckpointDir = None
    """Local checkpoint directory: required for bge-small; for minilm it replaces the packaged weights."""
    max_length: Count = 128
    """Tokens per text, truncated beyond."""
    pooling: Annotated[str, _one_of(*POOLINGS)] = "mean"
    """cls or mean; unset: the preset's (mean for minilm, cls for bge-small)."""
    query_prefix: str = ""
    """Prefix of queries, taken as it is (empty: none); unset: the preset's (BGE's instruction for bge-small)."""
    # Measured on 2 cores (benchmarks/embedding_throughput.py): 2 threads beat 1 for both
    # batch-1 latency and batch-32 throughput with one instance.
    num_threads: Count = 2
    """Torch intra-op threads per model instance."""

    @model_validator(mode="before")
    @classmethod
    def _preset_defaults(cls, values: Any) -> Any:
        """Pooling and query prefix not set: the preset's."""
        if not isinstance(values, dict):
            return values
        model = values.get("model", cls.model_fields["model"].default)
        preset = PRESETS.get(model.strip().lower()) if isinstance(model, str) else None
        if preset is None:
            return values  # the model's own validation names it
        return {"pooling": preset.pooling, "query_prefix": preset.query_prefix, **values}


# --- reranker ------------------------------------------------------------------------------

QUANTIZE_MODES = ("int8", "none")


class RerankerSettings(ModelSettings):
    """The reranker model (atelier/inference/reranker.py)."""

    model_config = SettingsConfigDict(env_prefix="ATELIER_RERANK_")

    model_dir: CheckpointDir = None
    """Local sequence-classification cross-encoder checkpoint directory (required)."""
    max_length: Count = 48
    """Tokens per (query, passage) pair: a query, the passage's name and attributes."""
    num_threads: Count = 2
    """Torch intra-op threads per model instance."""
    quantize: Annotated[str, _one_of(*QUANTIZE_MODES)] = "int8"
    """int8: dynamic int8 quantisation of the encoder's Linear layers at load (CPU, ~2x faster); none: the
    checkpoint's own precision."""


# --- clip_image and clip_text: one checkpoint, ATELIER_CLIP_MODEL_DIR ------------------------


class ClipImageSettings(ModelSettings):
    """The clip_image model (atelier/inference/clip_image.py)."""

    model_config = SettingsConfigDict(env_prefix="ATELIER_CLIP_")

    model_dir: CheckpointDir = None
    """Local CLIP checkpoint directory (required; shared with clip_text)."""
    image_num_threads: Count = 2
    """Torch intra-op threads per clip_image instance."""


class ClipTextSettings(ModelSettings):
    """The clip_text model (atelier/inference/clip_text.py)."""

    model_config = SettingsConfigDict(env_prefix="ATELIER_CLIP_")

    model_dir: CheckpointDir = None
    """Local CLIP checkpoint directory (required; shared with clip_image)."""
    text_max_length: Annotated[int | None, BeforeValidator(_positive_int)] = None
    """Tokens per text, truncated beyond; unset: the checkpoint's limit (77 for OpenAI's CLIP)."""
    text_num_threads: Count = 2
    """Torch intra-op threads per clip_text instance."""
