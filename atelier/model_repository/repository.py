"""The runtime Triton model repository: numbered versions of each model, each with its weights and a record.

Layout (one folder per model of triton_models/, which stays code and config in git)::

    <repository>/<model>/config.pbtxt      triton_models/<model>/config.pbtxt, plus the version policy
                                          (the version serving) and the instance kind
    <repository>/<model>/history.json      the versions served, oldest first; the last one serves
    <repository>/<model>/<N>/model.py      triton_models/<model>/1/model.py (code is code, refreshed)
    <repository>/<model>/<N>/checkpoint/   the version's weights (a transformers checkpoint folder)
    <repository>/<model>/<N>/onnx/         the reranker's weights exported for ONNX Runtime when published
                                          (atelier/inference/onnx_runtime.py)
    <repository>/<model>/<N>/version.json  its record: source, sha256 of every file, training record,
                                          the export, when it was published

A version without ``checkpoint/`` names its weights in its record (the packaged MiniLM of
``text_embedding``). Triton runs in explicit model control mode and loads exactly the version the
policy names, so a version folder being written is never seen.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from atelier.serving.index_names import IMAGE_COLLECTION, TEXT_COLLECTION

CONFIG = "config.pbtxt"
HISTORY = "history.json"
RECORD = "version.json"
CHECKPOINT = "checkpoint"
MODEL_CODE = "model.py"
# Written beside a checkpoint by `atelier models train-*`: copied into the record.
TRAINING_RECORD = "training.json"
WEIGHT_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model")
INSTANCE_KINDS = {
    "cpu": model_config_pb2.ModelInstanceGroup.KIND_CPU,
    "gpu": model_config_pb2.ModelInstanceGroup.KIND_GPU,
}


class RefusedCheckpoint(ValueError):
    """A checkpoint that cannot be a version: what is missing or wrong, in words."""


@dataclass(frozen=True)
class Family:
    """Models published together from one checkpoint (CLIP's two towers), and what their checkpoint needs."""

    name: str
    models: tuple[str, ...]
    files: tuple[str, ...] = ()  # needed beside config.json, the weights and a tokenizer
    # The Milvus alias of the collection its vectors fill (None: it fills none): a new version
    # re-embeds the catalogue into a collection of its own, and the alias moves with the version.
    collection: str | None = None
    # Writes what a version serves from beside its weights (its checkpoint dir or None, version dir, its
    # settings) -> the files written and why there are none (None: written); run once, when published.
    export: Callable[[Path | None, Path, Mapping[str, Any]], tuple[list[Path], str | None]] | None = None
    # Settings a version takes from its checkpoint's training record (training.json) unless published
    # with its own: what the weights were trained with, such as the reranker's tokens per pair.
    trained_settings: tuple[str, ...] = ()
    # Its checkpoint may be a folder of one GGUF file: config, weights and tokenizer in one.
    gguf: bool = False

    @property
    def embeds(self) -> bool:
        return self.collection is not None


def _export_reranker(
    checkpoint: Path | None, version_dir: Path, settings: Mapping[str, Any]
) -> tuple[list[Path], str | None]:
    from atelier.inference.onnx_runtime import export_version

    return export_version(checkpoint, version_dir) if checkpoint is not None else ([], "no checkpoint")


def _export_text_embedding(
    checkpoint: Path | None, version_dir: Path, settings: Mapping[str, Any]
) -> tuple[list[Path], str | None]:
    """The version's own checkpoint, or the weights its settings name (the packaged MiniLM of version 1)."""
    from atelier.inference.onnx_runtime import export_embedding, export_version
    from atelier.inference.settings import SettingsError, TextEmbeddingSettings
    from atelier.inference.text_embedding import resolve_model_dir

    if checkpoint is None:
        try:
            checkpoint = resolve_model_dir(TextEmbeddingSettings.from_env(version=dict(settings)))
        except SettingsError as error:
            return [], str(error)
    return export_version(checkpoint, version_dir, export_embedding)


FAMILIES = {
    family.name: family
    for family in (
        Family("text_embedding", ("text_embedding",), collection=TEXT_COLLECTION, export=_export_text_embedding),
        Family("reranker", ("reranker",), export=_export_reranker, trained_settings=("max_length",)),
        Family("clip", ("clip_image", "clip_text"), files=("preprocessor_config.json",), collection=IMAGE_COLLECTION),
        Family("explainer", ("explainer",), gguf=True),
    )
}


def family_of(name: str) -> Family:
    """The family named `name`, or the one a model of that name belongs to."""
    if name in FAMILIES:
        return FAMILIES[name]
    for family in FAMILIES.values():
        if name in family.models:
            return family
    raise KeyError(f"no model {name!r}: one of {', '.join(FAMILIES)}")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_files(source: Path) -> dict[str, str]:
    """sha256 of every file of a checkpoint folder, by its path in a version folder (checkpoint/...)."""
    return {
        f"{CHECKPOINT}/{path.relative_to(source).as_posix()}": sha256_file(path)
        for path in sorted(source.rglob("*"))
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(source).parts)
    }


def check_checkpoint(source: Path, family: Family) -> None:
    """Refuses (RefusedCheckpoint) a folder that cannot be loaded as `family`'s checkpoint, saying why."""
    if not source.is_dir():
        raise RefusedCheckpoint(f"{source} is not a directory")
    if family.gguf and not (source / "config.json").exists():
        ggufs = list(source.glob("*.gguf"))
        if len(ggufs) != 1:
            raise RefusedCheckpoint(
                f"{source} has no config.json and {len(ggufs)} GGUF files: one GGUF file, or a checkpoint"
            )
        if ggufs[0].stat().st_size == 0:
            raise RefusedCheckpoint(f"{ggufs[0]} is empty: an incomplete copy?")
        return
    try:
        config = json.loads((source / "config.json").read_text())
    except FileNotFoundError:
        raise RefusedCheckpoint(f"{source} has no config.json: not a transformers checkpoint") from None
    except ValueError as error:
        raise RefusedCheckpoint(f"{source}/config.json is not valid JSON ({error})") from None
    if not isinstance(config, dict) or "model_type" not in config:
        raise RefusedCheckpoint(f"{source}/config.json names no model_type")
    if not any((source / name).is_file() for name in WEIGHT_FILES):
        raise RefusedCheckpoint(f"{source} has no weights (none of {', '.join(WEIGHT_FILES)})")
    for name in WEIGHT_FILES:
        weights = source / name
        if weights.is_file() and weights.stat().st_size == 0:
            raise RefusedCheckpoint(f"{weights} is empty: an incomplete copy?")
    if not any((source / name).is_file() for name in TOKENIZER_FILES):
        raise RefusedCheckpoint(f"{source} has no tokenizer (none of {', '.join(TOKENIZER_FILES)})")
    for name in family.files:
        if not (source / name).is_file():
            raise RefusedCheckpoint(f"{source} has no {name}, which {family.name} needs")


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: UP017 (Triton image: Python 3.10)


@dataclass(frozen=True)
class ModelFolder:
    """One model's folder in the runtime repository."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    def versions(self) -> list[int]:
        """Published versions (folders with a record), in order."""
        if not self.path.is_dir():
            return []
        return sorted(int(p.name) for p in self.path.iterdir() if p.name.isdigit() and (p / RECORD).is_file())

    def version_dir(self, version: int) -> Path:
        return self.path / str(version)

    def record(self, version: int) -> dict[str, Any]:
        return json.loads((self.version_dir(version) / RECORD).read_text())

    def history(self) -> list[int]:
        try:
            return [int(v) for v in json.loads((self.path / HISTORY).read_text())]
        except FileNotFoundError:
            return []

    def serving(self) -> int | None:
        """The version the policy names (the last served one still on disk), None when there is none."""
        present = set(self.versions())
        served = [v for v in self.history() if v in present]
        return served[-1] if served else None

    def write_history(self, history: Sequence[int]) -> None:
        _write_atomically(self.path / HISTORY, json.dumps(list(history)) + "\n")

    def next_version(self) -> int:
        taken = [int(p.name) for p in self.path.iterdir() if p.name.isdigit()] if self.path.is_dir() else []
        return max([0, *taken, *self.history()]) + 1

    def unfinished(self, files: Mapping[str, str]) -> int | None:
        """A version newer than every served one, never served, holding exactly `files`: a publish that
        stopped before its switch (a re-index cut short), to resume rather than start again."""
        served = self.history()
        for version in reversed(self.versions()):
            if served and version <= max(served):
                break
            if version not in served and self.record(version).get("files") == dict(files):
                return version
        return None


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


@dataclass(frozen=True)
class ModelRepository:
    """The runtime repository at `path`, built from the code and configs of `source` (triton_models/)."""

    path: Path
    source: Path
    instance_kind: str = "cpu"

    def model(self, name: str) -> ModelFolder:
        return ModelFolder(self.path / name)

    def model_names(self) -> list[str]:
        return sorted(p.parent.name for p in self.source.glob(f"*/{CONFIG}"))

    # -- configuration ---------------------------------------------------------------------

    def config(self, name: str, versions: Sequence[int]) -> str:
        """triton_models/<name>/config.pbtxt serving exactly `versions`, on this repository's instance kind."""
        config = text_format.Parse((self.source / name / CONFIG).read_text(), model_config_pb2.ModelConfig())
        config.version_policy.specific.versions[:] = sorted(versions)
        for group in config.instance_group:
            group.kind = INSTANCE_KINDS[self.instance_kind]
        header = f"# Generated from triton_models/{name}/{CONFIG}: the version policy names the version serving.\n"
        return header + text_format.MessageToString(config)

    def write_config(self, name: str, versions: Sequence[int]) -> None:
        folder = self.model(name)
        folder.path.mkdir(parents=True, exist_ok=True)
        text = self.config(name, versions)
        target = folder.path / CONFIG
        if not target.is_file() or target.read_text() != text:
            _write_atomically(target, text)

    def refresh(self) -> list[str]:
        """Brings every model's code and config up to date with triton_models/; returns the models
        that have a version to serve."""
        serving = []
        for name in self.model_names():
            folder = self.model(name)
            for version in folder.versions():
                self._write_code(name, folder.version_dir(version))
            version = folder.serving()
            if version is not None:
                self.write_config(name, [version])
                serving.append(name)
        return serving

    def _write_code(self, name: str, version_dir: Path) -> None:
        code = (self.source / name / "1" / MODEL_CODE).read_text()
        target = version_dir / MODEL_CODE
        if not target.is_file() or target.read_text() != code:
            _write_atomically(target, code)

    # -- versions ----------------------------------------------------------------------------

    def write_version(
        self,
        name: str,
        version: int,
        source: Path | None,
        described_as: str,
        settings: Mapping[str, Any] | None = None,
    ) -> Path:
        """Writes `name`'s version `version` whole (staged, then renamed): the checkpoint copied from
        `source` (None: weights named in the record only), its record, the model's code."""
        folder = self.model(name)
        folder.path.mkdir(parents=True, exist_ok=True)
        final = folder.version_dir(version)
        if final.exists():
            raise FileExistsError(f"{final} exists")
        staging = folder.path / f".staging-{version}-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            files: dict[str, str] = {}
            training = None
            if source is not None:
                shutil.copytree(source, staging / CHECKPOINT, ignore=shutil.ignore_patterns(".*"))
                files = checkpoint_files(staging / CHECKPOINT)
                if (staging / CHECKPOINT / TRAINING_RECORD).is_file():
                    training = json.loads((staging / CHECKPOINT / TRAINING_RECORD).read_text())
            export = None
            family = FAMILIES.get(name) or next((f for f in FAMILIES.values() if name in f.models), None)
            if family is not None and training:
                trained = {key: training[key] for key in family.trained_settings if key in training}
                settings = trained | dict(settings or {})
            if family is not None and family.export is not None:
                checkpoint = staging / CHECKPOINT if source is not None else None
                exported, not_exported = family.export(checkpoint, staging, settings or {})
                files |= {path.relative_to(staging).as_posix(): sha256_file(path) for path in exported}
                export = {"files": [path.relative_to(staging).as_posix() for path in exported]}
                if not_exported is not None:
                    export["skipped"] = not_exported
            if settings:
                (staging / "settings.json").write_text(json.dumps(dict(settings), indent=2) + "\n")
            record = {
                "model": name,
                "version": version,
                "source": described_as,
                "published": _now(),
                "files": files,
                "settings": dict(settings or {}),
                "training": training,
                "export": export,
            }
            (staging / RECORD).write_text(json.dumps(record, indent=2) + "\n")
            self._write_code(name, staging)
            staging.rename(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return final

    def remove_version(self, name: str, version: int) -> None:
        shutil.rmtree(self.model(name).version_dir(version), ignore_errors=True)

    def verify(self, name: str, version: int) -> list[str]:
        """Files of the version whose sha256 no longer matches its record (or that are gone)."""
        folder = self.model(name)
        record = folder.record(version)
        bad = []
        for relative, digest in record.get("files", {}).items():
            path = folder.version_dir(version) / relative
            if not path.is_file() or sha256_file(path) != digest:
                bad.append(relative)
        return bad
