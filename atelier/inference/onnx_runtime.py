"""ONNX Runtime for the reranker on CPU: the export a published version carries, and its session.

`atelier models publish` exports a reranker version's checkpoint once (``export_version``) into the
version folder, so the exported files are part of the version (hashed in its record like its
weights)::

    <version>/onnx/model.onnx        the transformers graph, fp32 (torch.onnx.export)
    <version>/onnx/model.int8.onnx   the same after ONNX Runtime's transformer fusions (attention,
                                     LayerNorm, GELU) and dynamic int8 quantisation of its matrix
                                     products, weights per output channel, the pooler and
                                     classifier head kept in full precision (as quantize_int8 does)

A Triton instance on CPU runs the file of its ``quantize`` setting with ONNX Runtime when the runtime
setting says so (``runtime``: onnx, or auto); a GPU instance, a checkpoint that could not be exported
and ``runtime=torch`` (the default) run the transformers model (atelier/inference/reranker.py).
docs/performance.md has the measurements (benchmarks/reranker_runtimes.py) that kept torch int8 the
default on CPUs without VNNI: int8 matrix products gain little there whatever the runtime.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

EXPORT_DIR = "onnx"
FILES = {"none": "model.onnx", "int8": "model.int8.onnx"}
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT = "logits"
HIDDEN = "last_hidden_state"
HEAD_MODULES = ("pooler", "classifier")
OPSET = 17


class ExportError(RuntimeError):
    """The checkpoint cannot be exported (its version is served by the transformers model)."""


def exported_file(export_dir: Path | None, quantize: str) -> Path | None:
    """The file of a version's export (its ``onnx/`` folder, settings' ``export_dir``) for ``quantize``
    (none: fp32), when the version carries one."""
    if export_dir is None or quantize not in FILES:
        return None
    path = Path(export_dir) / FILES[quantize]
    return path if path.is_file() else None


def forward_inputs(model: Any, sample: Mapping[str, Any]) -> list[str]:
    """The sample's inputs in the order of the model's forward(): the exporter names its inputs by
    position, so any other order would name one tensor after another."""
    import inspect

    return [name for name in inspect.signature(model.forward).parameters if name in sample and name in INPUTS]


def _load(auto_class: Any, model_dir: Path) -> tuple[Any, Any]:
    """(model in eval mode, tokenizer) of a checkpoint; ExportError when it does not load."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        return auto_class.from_pretrained(model_dir, local_files_only=True).eval(), tokenizer
    except Exception as error:  # whatever the weights' format raises: publishing checked them already
        raise ExportError(f"cannot load {model_dir}: {error}") from error


def _export(model: Any, sample: Mapping[str, Any], path: Path, output: str, output_axes: dict[int, str]) -> None:
    """``model`` traced on ``sample`` into ``path``, its rows and tokens left dynamic; ExportError when the
    exporter cannot handle it."""
    import torch

    names = forward_inputs(model, sample)
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {name: {0: "rows", 1: "tokens"} for name in names} | {output: output_axes}
    try:
        with torch.inference_mode():
            torch.onnx.export(
                model,
                (),
                str(path),
                kwargs={name: sample[name] for name in names},
                input_names=names,
                output_names=[output],
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
            )
    except Exception as error:  # an architecture the exporter does not handle
        raise ExportError(f"torch.onnx.export failed: {error}") from error


def export_cross_encoder(checkpoint_dir: Path, out_dir: Path) -> list[Path]:
    """Exports the sequence-classification checkpoint into ``out_dir`` (the FILES); ExportError when
    it cannot be."""
    from transformers import AutoModelForSequenceClassification

    model, tokenizer = _load(AutoModelForSequenceClassification, checkpoint_dir)
    sample = tokenizer(["black dress"] * 2, ["Slim dress. Colour: Black"] * 2, padding=True, return_tensors="pt")
    fp32, int8 = out_dir / FILES["none"], out_dir / FILES["int8"]
    _export(model, sample, fp32, OUTPUT, {0: "rows"})
    _fuse_and_quantize(fp32, int8, model.config)
    return [fp32, int8]


def _fuse_and_quantize(fp32: Path, int8: Path, config: Any) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    with tempfile.TemporaryDirectory() as tmp:
        fused = Path(tmp) / "fused.onnx"
        # "bert" fusions cover BERT's and (XLM-)RoBERTa's encoder layers alike
        optimize_model(
            str(fp32), model_type="bert", num_heads=config.num_attention_heads, hidden_size=config.hidden_size
        ).save_model_to_file(str(fused))
        head = [
            node.name
            for node in onnx.load(str(fused)).graph.node
            if node.op_type in ("MatMul", "Gemm") and any(f"/{module}/" in node.name for module in HEAD_MODULES)
        ]
        quantize_dynamic(
            fused,
            int8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            nodes_to_exclude=head,
            # the fused nodes are of ONNX Runtime's own domain, whose output types shape inference leaves open
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )


def export_version(
    checkpoint_dir: Path, version_dir: Path, export: Callable[[Path, Path], list[Path]] | None = None
) -> tuple[list[Path], str | None]:
    """Exports a version's weights into ``<version_dir>/onnx`` with ``export`` (default: the reranker's
    ``export_cross_encoder``): the files written, and why there are none (the version is then served by
    the transformers model) or None."""
    out_dir = version_dir / EXPORT_DIR
    try:
        return (export or export_cross_encoder)(checkpoint_dir, out_dir), None
    except ExportError as error:
        shutil.rmtree(out_dir, ignore_errors=True)
        return [], str(error)


def export_embedding(model_dir: Path, out_dir: Path) -> list[Path]:
    """Exports a sentence encoder (transformers' AutoModel, its last hidden state out) into
    ``out_dir``/model.onnx, fp32: int8 changed a query's nearest passages (docs/performance.md)."""
    from transformers import AutoModel

    model, tokenizer = _load(AutoModel, model_dir)
    sample = tokenizer(["black dress", "a slim fit dress"], padding=True, return_tensors="pt")
    path = out_dir / FILES["none"]
    _export(model, sample, path, HIDDEN, {0: "rows", 1: "tokens"})
    return [path]


def onnx_unavailable(variable: str, runtime: str, on_cpu_in_fp32: str | None, exported: Path | None) -> str | None:
    """Why ONNX Runtime cannot serve a model (the transformers model does), or None when it can; a
    SettingsError naming ``variable`` when ``runtime`` is onnx and it cannot. ``on_cpu_in_fp32``: None
    on a CPU instance in fp32, else its device and precision in words."""
    from atelier.inference.settings import SettingsError

    if runtime == "torch":
        return "runtime torch"
    why = None
    if on_cpu_in_fp32 is not None:
        why = f"ONNX Runtime serves CPU instances in fp32, this one is {on_cpu_in_fp32}"
    elif exported is None:
        why = "the version carries no exported model (`atelier models publish` exports one)"
    if why is not None and runtime == "onnx":
        raise SettingsError(f"{variable}=onnx: {why}")
    return why


class OnnxSession:
    """An ONNX Runtime CPU session of an exported encoder: tokenised inputs in, its one output out."""

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Its threads sleep once a run ends instead of spinning for more work: beside the reranker on the
        # same cores, a query's embedding spun ~25 ms of CPU away from the rerank that follows it
        # (OMP_WAIT_POLICY=PASSIVE does the same for torch's threads: atelier/stack/triton.py).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = path
        self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._inputs = [item.name for item in self._session.get_inputs()]

    def config_entry(self, key: str) -> str:
        """A session configuration entry as ONNX Runtime holds it."""
        return self._session.get_session_options().get_session_config_entry(key)

    def __call__(self, batch: Mapping[str, Any]) -> np.ndarray:
        feed = {name: np.asarray(batch[name], dtype=np.int64) for name in self._inputs}
        return self._session.run(None, feed)[0]
