"""The CPU's flags, read once from /proc/cpuinfo, and what the reranker's auto precision makes of them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from atelier.inference import cpu_features
from atelier.inference import reranker as rr

SAPPHIRE_RAPIDS = "avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8"


def cpuinfo(tmp_path: Path, name: str, flags: str) -> Path:
    path = tmp_path / name
    path.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse2 avx2 {flags}\n\nprocessor\t: 1\n")
    return path


def test_amx_bf16_needs_the_tiles_and_their_bf16(tmp_path: Path) -> None:
    assert cpu_features.has_amx_bf16(cpuinfo(tmp_path, "sapphire-rapids", SAPPHIRE_RAPIDS))
    assert not cpu_features.has_amx_bf16(cpuinfo(tmp_path, "zen4", "avx512f avx512_bf16 avx512_vnni"))
    assert not cpu_features.has_amx_bf16(tmp_path / "absent")
    assert cpu_features.cpu_flags(tmp_path / "absent") == frozenset()


@pytest.mark.parametrize(
    ("amx", "runtime", "dtype"),
    [
        (True, "torch", torch.bfloat16),
        (True, "auto", torch.bfloat16),  # ONNX Runtime runs fp32 only: torch in bf16 is the faster
        (True, "onnx", torch.float32),  # asked for ONNX Runtime: fp32, which it runs
        (False, "torch", torch.float32),
        (False, "auto", torch.float32),
    ],
)
def test_the_rerankers_auto_precision_on_cpu(
    monkeypatch: pytest.MonkeyPatch, amx: bool, runtime: str, dtype: torch.dtype
) -> None:
    monkeypatch.setattr(rr, "has_amx_bf16", lambda: amx)
    assert rr.cpu_dtype(runtime) == dtype
