"""The reranker's CPU runtimes side by side: the same checkpoint, the same tokens, the same candidates.

For held-out attribute queries (the eval's generator, seed 1 by default: the eval's own seed 5 chooses
nothing), the running stack gives each query's 100 ANN candidates (one anonymous search asked for all of
them, read in retrieval order). Each runtime then scores every query's candidates in process, one call
of 100 pairs per query as Triton gets it, and is measured on

- latency of one call (p50, p95, min), after warm-up calls, on --threads intra-op threads (2: the whole
  machine; Triton now runs two instances of one thread, each scoring half of a search's pairs);
- NDCG@10 of the candidates in its order, against ANN's and full precision's.

Runtimes: torch fp32 (the reference), torch int8 (dynamic int8 per output channel, head kept: the
default on CPUs without AMX), torch bf16 (the default where the CPU has AMX tiles), ONNX Runtime fp32 and
int8 (the files `atelier models publish` exports, onnx_runtime.py), and OpenVINO fp32 and bf16 (its
inference precision hint) on the exported graph when the openvino package is installed (`pip install
openvino`). The torch rows run the last layer for the first token only, as the reranker serves; one row
runs bf16's whole last layer.

    .venv/bin/python -m benchmarks.reranker_runtimes [--checkpoint models/reranker] [--queries 200]

Needs the stack up with the catalogue loaded (`make up`). Run on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from atelier.inference.allocator import keep_freed_memory
from atelier.inference.cpu_features import has_amx_bf16
from atelier.inference.onnx_runtime import FILES, OnnxSession, export_version
from atelier.inference.reranker import CrossEncoder, RerankerSettings, log_odds, tokenize_pairs
from atelier.offline.evaluation.client import ALL_CANDIDATES, StackClient
from atelier.offline.evaluation.metrics import ndcg_at_k
from atelier.offline.evaluation.queries import graded_queries
from benchmarks.common import machine, summary

Scorer = Callable[[dict[str, torch.Tensor]], np.ndarray]
WARMUP = 5


Found = tuple[str, list[str], list[str], dict[str, int]]


def candidates(args: argparse.Namespace) -> list[Found]:
    """(query, its 100 candidates' ids and passages in ANN order, grades by id) per held-out query."""
    from atelier.offline.catalog.command import choose_dataset
    from atelier.offline.catalog.hm_loader import iter_articles
    from atelier.serving.settings import Endpoints

    articles = list(iter_articles(choose_dataset(args, reuse_synthetic=True).articles))
    by_id = {article.article_id: article for article in articles}
    client = StackClient(Endpoints.from_env().edge_grpc_address)
    found = []
    try:
        for query, grades in graded_queries(articles, args.queries, args.eval_seed, held_out=True):
            ids = client.search(query.text, ALL_CANDIDATES).retrieval
            passages = [by_id[article_id].text() for article_id in ids]
            found.append((query.text, ids, passages, grades))
    finally:
        client.close()
    return found


def torch_scorer(encoder: CrossEncoder, whole: bool = False) -> Scorer:
    """The encoder's torch forward as it serves (the last layer for the first token only), or the whole
    model's."""

    def score(batch: dict[str, torch.Tensor]) -> np.ndarray:
        with torch.inference_mode():
            if encoder.first_token is not None and not whole:
                return log_odds(encoder.first_token(batch).float()).numpy()
            return log_odds(encoder.model(**batch).logits.float()).numpy()

    return score


def onnx_scorer(path: Path, threads: int) -> Scorer:
    session = OnnxSession(path, threads)
    return lambda batch: log_odds(torch.from_numpy(session(batch)).float()).numpy()


def openvino_scorer(path: Path, threads: int, precision: str) -> Scorer | None:
    try:
        import openvino
    except ImportError:
        return None
    config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": precision}
    compiled = openvino.Core().compile_model(str(path), "CPU", config)
    names = [port.get_any_name() for port in compiled.inputs]
    return lambda batch: log_odds(torch.from_numpy(compiled({n: batch[n].numpy() for n in names})[0])).numpy()


def measure(
    score: Scorer, batches: Sequence[dict[str, torch.Tensor]], found: Sequence[Found]
) -> tuple[list[float], float]:
    """(ms of each call after the warm-up, mean NDCG@10 of the runtime's order)."""
    for batch in batches[:WARMUP]:
        score(batch)
    wall, ndcg = [], []
    for batch, (_, ids, _, grades) in zip(batches, found, strict=True):
        started = time.perf_counter()
        odds = score(batch)
        wall.append((time.perf_counter() - started) * 1000)
        order = [ids[i] for i in np.argsort(-odds, kind="stable")]
        ndcg.append(ndcg_at_k(order, grades, 10))
    return wall, statistics.fmean(ndcg)


def main() -> None:
    from atelier.offline.catalog.command import add_dataset_arguments

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataset_arguments(parser)
    parser.add_argument("--checkpoint", type=Path, default=Path("models/reranker"))
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--eval-seed", type=int, default=1, help="seed of the held-out queries")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads of the one call")
    parser.add_argument("--max-length", type=int, default=48, help="tokens per pair (ATELIER_RERANK_MAX_LENGTH)")
    parser.add_argument("--runtimes", help="only these, comma-separated (default: all)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    print(keep_freed_memory(), "(as in Triton's model processes)")
    print(machine())
    found = candidates(args)
    common = {"model_dir": args.checkpoint, "max_length": args.max_length, "runtime": "torch"}
    fp32 = CrossEncoder(RerankerSettings(quantize="none", precision="fp32", **common))
    batches = [dict(tokenize_pairs(fp32.tokenizer, [q] * len(p), p, fp32.settings.max_length)) for q, _, p, _ in found]
    ann = statistics.fmean(ndcg_at_k(ids, grades, 10) for _, ids, _, grades in found)
    tokens = statistics.fmean(int(batch["attention_mask"].sum()) / len(batch["attention_mask"]) for batch in batches)
    padded = statistics.fmean(batch["input_ids"].shape[1] for batch in batches)
    print(
        f"{args.checkpoint}, {len(found)} held-out queries (seed {args.eval_seed}), {ALL_CANDIDATES} candidates a "
        f"call, {args.threads} threads, max_length {fp32.settings.max_length} (pairs {tokens:.1f} tokens on "
        f"average, padded to {padded:.1f}); load {os.getloadavg()[0]:.2f}; NDCG@10 of ANN order {ann:.4f}; "
        f"AMX bf16 tiles: {'yes' if has_amx_bf16() else 'no'}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        version = Path(tmp)
        started = time.perf_counter()
        _, skipped = export_version(args.checkpoint, version)
        if skipped:
            raise SystemExit(f"export failed: {skipped}")
        print(f"export + fusions + int8: {time.perf_counter() - started:.1f} s")
        int8 = CrossEncoder(RerankerSettings(quantize="int8", precision="fp32", **common))
        bf16 = CrossEncoder(RerankerSettings(quantize="none", precision="bf16", **common))
        onnx_fp32 = version / "onnx" / FILES["none"]
        runtimes: dict[str, Scorer | None] = {
            "torch fp32": torch_scorer(fp32),
            "torch int8": torch_scorer(int8),
            "torch bf16, whole last layer": torch_scorer(bf16, whole=True),
            "torch bf16": torch_scorer(bf16),
            "onnxruntime fp32": onnx_scorer(onnx_fp32, args.threads),
            "onnxruntime int8": onnx_scorer(version / "onnx" / FILES["int8"], args.threads),
            "openvino fp32": openvino_scorer(onnx_fp32, args.threads, "f32"),
            "openvino bf16": openvino_scorer(onnx_fp32, args.threads, "bf16"),
        }
        print("| runtime | p50 ms | p95 ms | min ms | vs torch int8 (p50) | NDCG@10 | vs fp32 |")
        print("|---|---|---|---|---|---|---|")
        reference_ndcg, baseline_p50 = None, None
        chosen = args.runtimes.split(",") if args.runtimes else list(runtimes)
        for name, score in runtimes.items():
            if name not in chosen:
                continue
            if score is None:
                print(f"| {name} | not installed | | | | | |")
                continue
            wall, ndcg = measure(score, batches, found)
            figures = summary(wall)
            reference_ndcg = ndcg if reference_ndcg is None else reference_ndcg
            baseline_p50 = figures["p50"] if name == "torch int8" else baseline_p50
            speedup = f"{baseline_p50 / figures['p50']:.2f}x" if baseline_p50 else ""
            print(
                f"| {name} | {figures['p50']:.1f} | {figures['p95']:.1f} | {min(wall):.1f} | {speedup} | "
                f"{ndcg:.4f} | {ndcg - reference_ndcg:+.4f} |"
            )


if __name__ == "__main__":
    main()
