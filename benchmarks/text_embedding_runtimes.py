"""The text embedding's CPU runtimes side by side: the same checkpoint, the same tokens, the same texts.

The packaged all-MiniLM-L6-v2 (the default text model) through torch fp32 (what Triton runs), ONNX
Runtime fp32 and int8 (dynamic, per channel, after the transformer fusions), and OpenVINO fp32 when the
openvino package is installed. For each: the latency of one query (a search's embedding) and of a batch
of 64 passages (the catalogue load's), 2 threads; and how far its vectors are from torch fp32's: the
lowest cosine over the texts, and the share of each query's 10 nearest passages (of 3,000 synthetic
catalogue passages) that torch fp32 finds too.

    .venv/bin/python -m benchmarks.text_embedding_runtimes [--queries 200] [--passages 3000]

No stack needed. Run on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from atelier.inference.allocator import keep_freed_memory
from atelier.inference.onnx_runtime import forward_inputs
from atelier.inference.settings import TextEmbeddingSettings
from atelier.inference.text_embedding import QUERY, TextEncoder, apply_prefix, pool
from atelier.inference.triton_model import l2_normalise
from benchmarks.common import machine, summary

Embed = Callable[[Sequence[str], str], np.ndarray]
PASSAGE_BATCH = 64


def texts(queries: int, passages: int) -> tuple[list[str], list[str]]:
    """Held-out query texts (the eval's generator, seed 1) and synthetic catalogue passages."""
    from atelier.offline.catalog.schema import Article
    from atelier.offline.catalog.synthetic import generate_articles
    from atelier.offline.evaluation.queries import generate_queries

    articles = [Article.from_row(row) for row in generate_articles(passages, seed=7)]
    asked = [query.text for query in generate_queries(articles, queries, 1, True)]
    return asked, [article.text() for article in articles]


def export(encoder: TextEncoder, folder: Path) -> tuple[Path, Path]:
    """(fp32, int8) ONNX files of the encoder's model: last hidden state out."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    sample = encoder.tokenizer(["black dress", "a slim fit dress"], padding=True, return_tensors="pt")
    names = forward_inputs(encoder.model, sample)
    fp32, fused, int8 = folder / "model.onnx", folder / "fused.onnx", folder / "model.int8.onnx"
    with torch.inference_mode():
        torch.onnx.export(
            encoder.model,
            (),
            str(fp32),
            kwargs={name: sample[name] for name in names},
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes={name: {0: "texts", 1: "tokens"} for name in names}
            | {"last_hidden_state": {0: "texts", 1: "tokens"}},
            opset_version=17,
            dynamo=False,
        )
    config = encoder.model.config
    optimize_model(
        str(fp32), model_type="bert", num_heads=config.num_attention_heads, hidden_size=config.hidden_size
    ).save_model_to_file(str(fused))
    quantize_dynamic(
        fused,
        int8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    return fp32, int8


def embedder(encoder: TextEncoder, run: Callable[[dict[str, np.ndarray]], np.ndarray] | None) -> Embed:
    """Texts of one mode to L2-normalised vectors, the model run by `run` (None: torch)."""
    settings = encoder.settings

    def embed(batch_texts: Sequence[str], mode: str) -> np.ndarray:
        tokens = encoder.tokenizer(
            apply_prefix(batch_texts, [mode] * len(batch_texts), settings.query_prefix),
            padding=True,
            truncation=True,
            max_length=settings.max_length,
            return_tensors="pt",
        )
        with torch.inference_mode():
            if run is None:
                hidden = encoder.model(**tokens).last_hidden_state
            else:
                hidden = torch.from_numpy(run({name: value.numpy() for name, value in tokens.items()}))
            return l2_normalise(pool(hidden.float(), tokens["attention_mask"], settings.pooling)).numpy()

    return embed


def onnx_run(path: Path, threads: int) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    inputs = [item.name for item in session.get_inputs()]
    return lambda feed: session.run(None, {name: feed[name] for name in inputs})[0]


def openvino_run(path: Path, threads: int) -> Callable[[dict[str, np.ndarray]], np.ndarray] | None:
    try:
        import openvino
    except ImportError:
        return None
    compiled = openvino.Core().compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": threads})
    inputs = [port.get_any_name() for port in compiled.inputs]
    return lambda feed: compiled({name: feed[name] for name in inputs})[0]


def timed(call: Callable[[], object], repeats: int) -> list[float]:
    call()
    wall = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        wall.append((time.perf_counter() - started) * 1000)
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--passages", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    print(keep_freed_memory(), "(as in Triton's model processes)")
    print(machine())
    queries, passages = texts(args.queries, args.passages)
    encoder = TextEncoder(TextEmbeddingSettings())
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = export(encoder, Path(tmp))
        runtimes = {
            "torch fp32": embedder(encoder, None),
            "onnxruntime fp32": embedder(encoder, onnx_run(fp32, args.threads)),
            "onnxruntime int8": embedder(encoder, onnx_run(int8, args.threads)),
        }
        ov = openvino_run(fp32, args.threads)
        if ov is not None:
            runtimes["openvino fp32"] = embedder(encoder, ov)
        print(
            f"MiniLM-L6 ({encoder.settings.max_length} tokens max), {args.threads} threads; {len(queries)} held-out "
            f"queries, {len(passages)} passages, batches of {PASSAGE_BATCH}"
        )
        print("| runtime | 1 query p50 ms | 64 passages p50 ms | lowest cosine to fp32 | top-10 shared with fp32 |")
        print("|---|---|---|---|---|")
        reference = None
        for name, embed in runtimes.items():
            one = summary(timed(lambda embed=embed: embed([queries[0]], QUERY), 50))["p50"]
            batch = summary(timed(lambda embed=embed: embed(passages[:PASSAGE_BATCH], "passage"), 10))["p50"]
            vectors = np.concatenate(
                [embed(passages[i : i + PASSAGE_BATCH], "passage") for i in range(0, len(passages), PASSAGE_BATCH)]
            )
            asked = embed(queries, QUERY)
            nearest = np.argsort(-(asked @ vectors.T), axis=1)[:, :10]
            if reference is None:
                reference = (vectors, asked, nearest)
            cosine = min(float((vectors * reference[0]).sum(1).min()), float((asked * reference[1]).sum(1).min()))
            shared = statistics.fmean(
                len(set(mine) & set(theirs)) / 10 for mine, theirs in zip(nearest, reference[2], strict=True)
            )
            print(f"| {name} | {one:.1f} | {batch:.1f} | {cosine:.4f} | {shared:.1%} |")


if __name__ == "__main__":
    main()
