"""The first run: every search feature on after `make up`, with no other command.

On a stack whose model repository has no reranker or CLIP version, this job (a process of the
stack, `python -m atelier.model_repository.first_run`) waits for the catalogue `make up` loads,
trains what is missing with recipes sized to a demo catalogue, and publishes each model as soon as
it is trained (then embeds the catalogue's photos with CLIP). Search turns reranking and image and
hybrid search on by itself once their models are ready. Progress and time left: `atelier status`
(from `first_run.json` in the state folder) and this job's log. `ATELIER_FIRST_RUN_TRAINING=0`
turns it off; the full recipes stay `atelier models train-reranker` and `train-clip`.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atelier.model_repository.publishing import Publisher
from atelier.offline.catalog.bootstrap import NoCatalogue, recorded_catalogue
from atelier.offline.catalog.hm_loader import HMDataset
from atelier.serving.settings import Endpoints, state_dir
from atelier.stack.models import CLIP_WEIGHTS, RERANKER_WEIGHTS, TrainedWeights, model_repository
from atelier.stack.settings import LauncherSettings

STATUS_FILE = "first_run.json"
CATALOGUE_POLL_S = 5.0
# Sized so that both models train within ~15 minutes of a 3,000-article demo catalogue on 2 cores
# (docs/performance.md, "First run"); `atelier models train-*` are the full recipes.
RERANKER_SIZE = {"queries": 1000, "sample": 3000, "eval_queries": 50, "per_shopper_word": 30, "by_group": 200}
CLIP_SETTINGS = {"steps": 300, "batch_size": 128, "validation_articles": 300}


@dataclass
class Progress:
    """What the first run is doing, written to `path` for `atelier status`, and to the log."""

    path: Path
    say: Callable[[str], None] = print
    _started: float = field(default_factory=time.monotonic)
    _last_logged: float = -1.0

    def stage(self, stage: str, **more: Any) -> None:
        self._started = time.monotonic()
        self._write({"stage": stage, **more})
        self.say(stage)

    def step(self, stage: str) -> Callable[[int, int], None]:
        """A training's `progress(step, steps)`: share done and time left, from the pace so far."""
        self.stage(stage)

        def report(step: int, steps: int) -> None:
            elapsed = time.monotonic() - self._started
            left = elapsed / step * (steps - step) if step else None
            self._write({"stage": stage, "step": step, "steps": steps, "seconds_left": left})
            if step / steps - self._last_logged >= 0.1 or step == steps:
                self._last_logged = step / steps
                self.say(f"{stage}: step {step}/{steps}, about {_minutes(left)} left")

        self._last_logged = 0.0
        return report

    def _write(self, status: dict[str, Any]) -> None:
        status["updated"] = time.time()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        temporary.write_text(json.dumps(status) + "\n")
        os.replace(temporary, self.path)


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def describe(state: Path) -> str | None:
    """One line for `atelier status`: what the first run is doing and the time left; None when it never ran."""
    try:
        status = json.loads((state / STATUS_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None
    line = f"first run: {status.get('stage', '?')}"
    if status.get("steps"):
        line += f" (step {status['step']}/{status['steps']}, about {_minutes(status.get('seconds_left'))} left)"
    return line


def missing(weights: TrainedWeights, state: Path) -> bool:
    repository = model_repository(state)
    return not any(repository.model(model).versions() for model in weights.models)


def wait_for_catalogue(endpoints: Endpoints, progress: Progress) -> HMDataset:
    progress.stage("waiting for the catalogue (`atelier catalog load`, which `make up` runs)")
    while True:
        try:
            return recorded_catalogue(endpoints)
        except NoCatalogue:
            time.sleep(CATALOGUE_POLL_S)
        except OSError:  # Redis not answering yet
            time.sleep(CATALOGUE_POLL_S)


def train_reranker(dataset: HMDataset, out: Path, progress: Progress) -> None:
    from atelier.offline.catalog.hm_loader import iter_articles
    from atelier.offline.training.command import DEFAULT_LAYERS, DEFAULT_SEED, Size
    from atelier.offline.training.command import train_reranker as train
    from atelier.offline.training.reranker import TrainSettings

    articles = list(iter_articles(dataset.articles))
    settings = TrainSettings(layers=DEFAULT_LAYERS, seed=DEFAULT_SEED)
    train(
        articles,
        str(dataset.articles),
        out,
        Size(**RERANKER_SIZE),
        settings,
        progress=progress.step("training the reranker"),
    )


def train_clip(dataset: HMDataset, out: Path, progress: Progress) -> None:
    from atelier.offline.training.clip import ClipSettings
    from atelier.offline.training.clip import train_clip as train
    from atelier.offline.training.clip_data import photo_catalogue

    catalogue = photo_catalogue(dataset)
    train(catalogue, str(dataset.articles), out, ClipSettings(**CLIP_SETTINGS), progress=progress.step("training CLIP"))


def load_photos(dataset: HMDataset, endpoints: Endpoints) -> None:
    from atelier.offline.catalog.bootstrap import LoadSettings, load_articles
    from atelier.offline.catalog.contents import ImageContent
    from atelier.offline.catalog.hm_loader import LoadReport, iter_articles
    from atelier.serving.article_index import IMAGE_COLLECTION, IndexSettings
    from atelier.serving.vision import ClipEncoder

    settings = LoadSettings(index=IndexSettings(collection=IMAGE_COLLECTION))
    content = ImageContent(
        ClipEncoder(endpoints.triton_address, timeout_s=settings.embed_timeout_s), dataset.image_path
    )
    result = asyncio.run(
        load_articles(iter_articles(dataset.articles, LoadReport()), None, endpoints, settings, content)
    )
    print(f"{result.collection}: {result.embedded} photos embedded in {result.seconds:.0f}s")


def run() -> int:
    state, endpoints = state_dir(), Endpoints.from_env()
    progress = Progress(state / STATUS_FILE, say=lambda line: print(line, flush=True))
    if not LauncherSettings.from_env().first_run_training:
        progress.stage("off (ATELIER_FIRST_RUN_TRAINING=0)")
        return 0
    todo = [weights for weights in (RERANKER_WEIGHTS, CLIP_WEIGHTS) if missing(weights, state)]
    if not todo:
        progress.stage("done: every model has a version")
        return 0
    started = time.monotonic()
    dataset = wait_for_catalogue(endpoints, progress)
    grace_s = LauncherSettings.from_env().models_switch_grace_s
    publisher = Publisher(
        model_repository(state), endpoints, say=lambda line: print(line, flush=True), switch_grace_s=grace_s
    )
    for weights in todo:
        out = state / "first_run" / weights.default_name
        if weights is CLIP_WEIGHTS and dataset.images is None:
            print(f"no photos in the catalogue at {dataset.directory}: CLIP is not trained", flush=True)
            continue
        if not (out / "training.json").is_file():  # else trained by an earlier, interrupted run
            (train_reranker if weights is RERANKER_WEIGHTS else train_clip)(dataset, out, progress)
        progress.stage(f"publishing the {weights.family.name} model")
        publisher.publish(weights.family.name, out)
        if weights is CLIP_WEIGHTS:
            progress.stage("embedding the catalogue's photos with CLIP")
            load_photos(dataset, endpoints)
    progress.stage(f"done: {', '.join(w.feature for w in todo)} on after {(time.monotonic() - started) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
