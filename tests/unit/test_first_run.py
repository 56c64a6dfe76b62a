"""The first run's progress, as `atelier status` shows it, and its switch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from atelier.model_repository import first_run
from atelier.model_repository.first_run import Progress, describe


def test_progress_says_the_stage_the_step_and_the_time_left(tmp_path: Path) -> None:
    lines: list[str] = []
    progress = Progress(tmp_path / "first_run.json", say=lines.append)
    assert describe(tmp_path) is None
    progress.stage("waiting for the catalogue")
    assert describe(tmp_path) == "first run: waiting for the catalogue"
    report = progress.step("training the reranker")
    for step in range(1, 11):
        report(step, 40)
    status = json.loads((tmp_path / "first_run.json").read_text())
    assert (status["stage"], status["step"], status["steps"]) == ("training the reranker", 10, 40)
    assert status["seconds_left"] >= 0
    shown = describe(tmp_path)
    assert shown is not None and shown.startswith("first run: training the reranker (step 10/40, about ")
    assert lines[:2] == ["waiting for the catalogue", "training the reranker"]
    assert any(line.startswith("training the reranker: step 4/40") for line in lines)  # every 10 %


def test_it_does_nothing_when_switched_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATELIER_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("ATELIER_FIRST_RUN_TRAINING", "0")
    assert first_run.run() == 0
    assert describe(tmp_path) == "first run: off (ATELIER_FIRST_RUN_TRAINING=0)"


def test_it_does_nothing_when_every_model_has_a_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATELIER_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("ATELIER_FIRST_RUN_TRAINING", raising=False)
    monkeypatch.delenv("ATELIER_MODEL_REPOSITORY", raising=False)
    monkeypatch.setattr(first_run, "missing", lambda weights, state: False)
    assert first_run.run() == 0
    assert describe(tmp_path) == "first run: done: every model has a version"
