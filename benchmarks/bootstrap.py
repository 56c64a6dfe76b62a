"""Catalogue bootstrap throughput (articles/s through Triton into Milvus and Redis) against the
model's raw throughput measured in this process, in the same run, on the catalogue's own texts.

Needs the stack up (`make up`); re-embeds the whole catalogue (`--force`):

    .venv/bin/python benchmarks/bootstrap.py [--articles 105542] [--raw-sample 2048]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time

import torch

from atelier.inference.text_embedding import TextEmbeddingSettings, TextEncoder
from atelier.offline.catalog.bootstrap import LoadSettings, load_articles
from atelier.offline.catalog.hm_loader import LoadReport, iter_articles
from atelier.offline.catalog.synthetic import write_synthetic_catalog
from atelier.serving.settings import ROOT, Endpoints
from benchmarks.common import machine


def raw_throughput(texts: list[str], batch: int, threads: int) -> float:
    """Passages/s of the model code Triton runs (atelier.inference's TextEncoder), in this process."""
    torch.set_num_threads(threads)
    encoder = TextEncoder(TextEmbeddingSettings.from_env({}))
    encoder.encode(texts[:batch], ["passage"] * batch)  # warm-up
    started = time.perf_counter()
    for i in range(0, len(texts), batch):
        chunk = texts[i : i + batch]
        encoder.encode(chunk, ["passage"] * len(chunk))
    return len(texts) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=105_542)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--raw-sample", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=2, help="torch threads, as Triton's model uses")
    args = parser.parse_args()
    directory = ROOT / "data" / "synthetic" / f"articles-{args.articles}-seed-{args.seed}"
    dataset = write_synthetic_catalog(directory, n_articles=args.articles, seed=args.seed)
    settings = LoadSettings(force=True)
    sample = [a.text() for a in itertools.islice(iter_articles(dataset.articles), args.raw_sample)]
    print(f"machine: {machine()}")
    raw = raw_throughput(sample, settings.embed_batch, args.threads)
    print(
        f"raw model throughput in-process: {raw:.0f} passages/s ({len(sample)} catalogue passages, "
        f"batches of {settings.embed_batch}, {args.threads} threads, 1 run)"
    )
    result = asyncio.run(
        load_articles(iter_articles(dataset.articles, LoadReport()), args.articles, Endpoints.from_env(), settings)
    )
    print(
        f"bootstrap: {result.articles} articles in {result.seconds:.0f} s = "
        f"{result.articles / result.seconds:.0f} articles/s ({result.embedded} embedded, 1 run)"
    )
    print(f"bootstrap / raw: {result.articles / result.seconds / raw:.0%}")


if __name__ == "__main__":
    main()
