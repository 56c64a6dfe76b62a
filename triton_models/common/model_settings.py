"""Settings helpers shared by the Python-backend models of this repository.

Not a model: this folder has no config.pbtxt, so Triton never loads it. Each ``model.py`` puts
this folder on ``sys.path`` (it sits two levels above every ``<model>/<version>/model.py``, here
and in the Triton image's /models) and imports this module by name.

A model's setting ``<NAME>`` is the environment variable ``ATELIER_<NAME>`` when set, else the
config.pbtxt parameter ``<name>`` (lower case), else the model's default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# Files of which a checkpoint directory needs at least one to build its tokenizer.
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model")


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names it."""


def setting(
    name: str, environ: Mapping[str, str], parameters: Mapping[str, str], keep_empty: bool = False
) -> tuple[str, str | None]:
    """(where it came from, raw value) of ATELIER_<NAME>, else of parameter <name>, else None.

    A blank value counts as not set unless ``keep_empty``.
    """
    env_name, key = f"ATELIER_{name}", name.lower()
    for where, raw in ((env_name, environ.get(env_name)), (f"config.pbtxt parameter {key}", parameters.get(key))):
        if raw is not None and (keep_empty or raw.strip()):
            return where, raw if keep_empty else raw.strip()
    return env_name, None


def positive_int(where: str, raw: str) -> int:
    """``raw`` as an integer >= 1, else a SettingsError naming ``where``."""
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{where} must be a positive integer, got {raw!r}") from None
    if value < 1:
        raise SettingsError(f"{where} must be a positive integer, got {raw!r}")
    return value


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
