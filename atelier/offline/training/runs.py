"""What every training run shares: a reproducible start, and its checkpoint written whole."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch


def threads() -> int:
    return len(os.sched_getaffinity(0))


def make_reproducible(seed: int) -> None:
    """Seeds every generator and asks torch for deterministic kernels, on all of this machine's cores."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads())


def staging_dir(out: Path) -> Path:
    """An empty folder beside `out` to write the checkpoint into before `publish`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    return staging


def publish(staging: Path, out: Path) -> None:
    """Moves the finished `staging` folder to `out`, replacing it, so `out` is never half-written."""
    previous = out.with_name(f".{out.name}.previous-{os.getpid()}")
    if out.exists():
        out.rename(previous)
    staging.rename(out)
    shutil.rmtree(previous, ignore_errors=True)
