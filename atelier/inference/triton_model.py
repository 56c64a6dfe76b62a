"""What the four models share: the ``TritonPythonModel`` skeleton, the device and precision they run in,
and the L2 normalisation of embeddings.

Each model's ``TritonPythonModel`` subclasses ``TritonModel`` and says only what is its own: its
signature, settings and encoder classes, how to describe the encoder it loaded, how to decode one request
into rows and how to compute the outputs of all the rows of a dynamic batch. ``initialize`` and
``execute`` follow python_backend's examples: settings read once at load, one forward pass per
``execute()``, a request that cannot be decoded refused alone (atelier/inference/request_batch.py).

One code path for CPU and GPU: the instance group of the model's config.pbtxt decides the device
(``instance_device``: KIND_GPU runs on ``cuda:<device id>``, anything else on the CPU), each encoder
moves its model and its inputs there and answers float32 numpy arrays. The model's ``precision``
setting decides the dtype (``model_dtype``: auto is fp16 on CUDA, fp32 on CPU); pooling, L2
normalisation and the reranker's sigmoid run in fp32 whatever the model's dtype.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from atelier.inference.allocator import keep_freed_memory
from atelier.inference.request_batch import gather, respond
from atelier.inference.settings import VERSION_CHECKPOINT, ModelSettings, version_dir, version_settings
from atelier.inference.signatures import Signature

try:
    import triton_python_backend_utils as pb_utils
except ImportError:  # imported outside Triton (unit tests, training, benchmarks)
    pb_utils = None


# Tokenizers without a configured limit report a huge sentinel as model_max_length.
UNSET_TOKENIZER_LIMIT = 1_000_000


def token_limit(config: Any, tokenizer: Any) -> int | None:
    """The longest input the checkpoint takes, in tokens: its position embeddings, or its tokenizer's
    limit when lower (XLM-RoBERTa has 514 positions for 512 tokens); None when neither says."""
    limits = [getattr(config, "max_position_embeddings", None), tokenizer.model_max_length]
    return min((limit for limit in limits if isinstance(limit, int) and limit < UNSET_TOKENIZER_LIMIT), default=None)


def l2_normalise(vectors: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(vectors, p=2, dim=-1)


CPU = torch.device("cpu")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
PRECISION_NAMES = {dtype: name for name, dtype in DTYPES.items()}


def instance_device(args: Mapping[str, str], cuda_devices: int | None = None) -> torch.device:
    """The torch device of the model instance Triton is loading, from python_backend's ``args``.

    ``model_instance_kind`` GPU (KIND_GPU in config.pbtxt): ``cuda:<model_instance_device_id>``; any
    other kind (CPU, MODEL): the CPU. A GPU instance that torch cannot run (no CUDA build, no device,
    a device id beyond the visible ones) fails the load with a RuntimeError saying so.
    ``cuda_devices``: the CUDA devices torch sees (default: asks torch; tests say).
    """
    kind = str(args.get("model_instance_kind", "CPU")).strip().upper().removeprefix("KIND_")
    if kind != "GPU":
        return CPU
    index = int(args.get("model_instance_device_id") or 0)
    if cuda_devices is None:
        cuda_devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if cuda_devices == 0:
        raise RuntimeError(
            f"the instance group asks for a GPU (KIND_GPU, device {index}) but torch {torch.__version__} "
            f"sees no CUDA device (CUDA build: {torch.version.cuda or 'none'}): run Triton with a CUDA build "
            "of torch on a machine with an NVIDIA GPU, or give the model a KIND_CPU instance group"
        )
    if index >= cuda_devices:
        raise RuntimeError(
            f"the instance group asks for GPU {index} but torch sees {cuda_devices} CUDA device(s) "
            "(CUDA_VISIBLE_DEVICES?)"
        )
    return torch.device("cuda", index)


def model_dtype(precision: str, device: torch.device, cpu_auto: torch.dtype = torch.float32) -> torch.dtype:
    """The dtype of a model's weights and activations: fp16, bf16 or fp32 as ``precision`` says; ``auto``
    is fp16 on CUDA, ``cpu_auto`` on CPU (fp32 unless the model says otherwise; fp16 runs on CPU too,
    slowly: the tolerance tests use it)."""
    if precision == "auto":
        return torch.float16 if torch.device(device).type == "cuda" else cpu_auto
    if precision not in DTYPES:
        raise ValueError(f"precision must be one of auto, {', '.join(DTYPES)}, got {precision!r}")
    return DTYPES[precision]


def precision_name(dtype: torch.dtype) -> str:
    return PRECISION_NAMES.get(dtype, str(dtype).removeprefix("torch."))


def place(model: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """``model`` on ``device`` in ``dtype`` (``model.half()`` for fp16), in eval mode."""
    model = model.to(device)
    return (model.half() if dtype == torch.float16 else model.to(dtype)).eval()


def loaded_version(args: Mapping[str, str], model_dir: Path | None) -> str:
    """What the load log line says of the version: its number and folder, and whether the checkpoint
    loaded is the version's own ``checkpoint/`` or named by the settings."""
    folder = version_dir(args)
    version = f"version {args.get('model_version', '?')}" + (f" ({folder})" if folder is not None else "")
    if model_dir is None:
        return f"{version}, checkpoint: none"
    own = folder is not None and Path(model_dir) == folder / VERSION_CHECKPOINT
    whose = "the version's own" if own else "from the settings"
    return f"{version}, checkpoint {model_dir} ({whose})"


class TritonModel:
    """A Triton Python-backend model of one encoder, one forward pass over each dynamic batch."""

    signature: ClassVar[Signature]
    settings_class: ClassVar[type[ModelSettings]]
    # The encoder of (settings, device), with no Triton involved; it has model_dir, device and dtype.
    encoder_class: ClassVar[Callable[..., Any]]
    threads_setting: ClassVar[str] = "num_threads"  # the settings field of torch's intra-op threads

    encoder: Any
    allocator: str  # what keep_freed_memory did, for the load line

    def describe(self, settings: Any) -> str:
        """What the load log line says after the version, checkpoint, device and precision: the model and the
        settings in force."""
        raise NotImplementedError

    @staticmethod
    def decode(request: Any) -> list[Any]:
        """The rows of one request; a ValueError refuses that request alone."""
        raise NotImplementedError

    def compute(self, rows: Sequence[Any]) -> dict[str, np.ndarray]:
        """Each output tensor of all the rows of a batch, one row per input row."""
        raise NotImplementedError

    def initialize(self, args: dict[str, str]) -> None:
        device = instance_device(args)
        settings = version_settings(self.settings_class, args)
        self.allocator = keep_freed_memory()
        torch.set_num_threads(getattr(settings, self.threads_setting))
        self.encoder = self.encoder_class(settings, device)
        warmed = self.warm_up(json.loads(args.get("model_config") or "{}").get("max_batch_size", 0))
        pb_utils.Logger.log_info(self.load_line(args, settings) + (f"; {warmed}" if warmed else ""))

    def warm_up(self, max_batch_size: int) -> str:
        """Runs the encoder before the first request as far as that request would find it slower the first
        time; what it did, for the load line ('' for nothing)."""
        return ""

    def load_line(self, args: Mapping[str, str], settings: Any) -> str:
        """The load log line: the model, its version and checkpoint, its device and precision, its settings."""
        encoder = self.encoder
        return (
            f"{self.signature.model} {loaded_version(args, encoder.model_dir)}, "
            f"on {encoder.device} in {precision_name(encoder.dtype)}: {self.describe(settings)}; {self.allocator}"
        )

    def execute(self, requests: list[Any]) -> list[Any]:
        rows, spans = gather(requests, self.decode)
        return respond(spans, self.compute(rows))

    def finalize(self) -> None:
        on_cuda = getattr(self.encoder, "device", CPU).type == "cuda"
        self.encoder = None
        if on_cuda:  # an unloaded version gives its GPU memory back to the next one
            torch.cuda.empty_cache()
