"""In-process latency of the reranker's CrossEncoder (atelier.inference.reranker, the code Triton
runs) scoring one query against its top-M candidates in one forward pass, as search asks it to.

The checkpoints are stand-ins built from the packaged all-MiniLM-L6-v2 weights with a random
classification head (atelier/offline/training/stand_in.py): all 6 layers, and its first 3. Their scores mean
nothing; their cost is that of a trained MiniLM cross-encoder of the same shape.

    .venv/bin/python benchmarks/reranker_latency.py [--pairs 30,50,100] [--layers 6,3] [--quantize int8,none]
        [--runtimes torch,onnx]

``onnx`` runs the checkpoint's export (atelier/inference/onnx_runtime.py, as publishing makes it) with
ONNX Runtime.

Figures vary with the machine's load: run it on an otherwise idle machine. "min ms" (the fastest
call) suffers least from other load; "cpu ms" is this process's CPU time per call (all torch
threads, spin-waiting included).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from atelier.inference.onnx_runtime import EXPORT_DIR, export_version
from atelier.inference.reranker import CrossEncoder, RerankerSettings
from atelier.offline.training.stand_in import build_stand_in_checkpoint
from benchmarks.common import machine, summary
from benchmarks.embedding_throughput import QUERIES, passages


def latencies_ms(encoder: object, n_pairs: int, repeats: int) -> tuple[list[float], list[float]]:
    """(wall ms, this process's CPU ms) of each call after 3 warm-up calls."""
    texts = passages(n_pairs * len(QUERIES))
    wall, cpu = [], []
    for i in range(repeats + 3):
        query = QUERIES[i % len(QUERIES)]
        candidates = texts[(i % len(QUERIES)) * n_pairs :][:n_pairs]
        started, started_cpu = time.perf_counter(), time.process_time()
        encoder.score([query] * n_pairs, candidates)
        if i >= 3:
            wall.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - started_cpu) * 1000)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", default="30,50,100", help="candidates per query, comma-separated")
    parser.add_argument("--layers", default="6,3", help="transformer layers kept, comma-separated")
    parser.add_argument("--quantize", default="int8,none", help="ATELIER_RERANK_QUANTIZE modes, comma-separated")
    parser.add_argument("--runtimes", default="torch", help="ATELIER_RERANK_RUNTIME values, comma-separated")
    parser.add_argument("--max-length", type=int, default=48, help="tokens per pair")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    print(machine())
    print(f"max_length {args.max_length}, {args.threads} torch thread(s), {args.repeats} calls per row")
    print(os.getloadavg())
    header = ("layers", "runtime", "quant", "pairs", "p50 ms", "p95 ms", "mean ms", "min ms", "cpu ms")
    print(" ".join(f"{name:>8}" for name in header))
    with tempfile.TemporaryDirectory() as tmp:
        for layers in map(int, args.layers.split(",")):
            # a version folder's layout: the export beside checkpoint/
            model_dir = build_stand_in_checkpoint(
                Path(tmp) / f"layers-{layers}" / "checkpoint", num_hidden_layers=layers
            )
            if "onnx" in args.runtimes:
                export_version(model_dir, model_dir.parent)
            for runtime, quantize in itertools.product(args.runtimes.split(","), args.quantize.split(",")):
                settings = {
                    "ATELIER_RERANK_MODEL_DIR": str(model_dir),
                    "ATELIER_RERANK_MAX_LENGTH": str(args.max_length),
                    "ATELIER_RERANK_QUANTIZE": quantize,
                    "ATELIER_RERANK_RUNTIME": runtime,
                    "ATELIER_RERANK_EXPORT_DIR": str(model_dir.parent / EXPORT_DIR),
                }
                encoder = CrossEncoder(RerankerSettings.from_env(settings))
                for n_pairs in map(int, args.pairs.split(",")):
                    wall, cpu = latencies_ms(encoder, n_pairs, args.repeats)
                    figures = summary(wall)
                    row = (figures["p50"], figures["p95"], figures["mean"], min(wall), statistics.fmean(cpu))
                    print(
                        f"{layers:>8} {runtime:>8} {quantize:>8} {n_pairs:>8} "
                        + " ".join(f"{value:>8.1f}" for value in row)
                    )


if __name__ == "__main__":
    main()
