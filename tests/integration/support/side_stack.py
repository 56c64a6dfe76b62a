"""A second stack beside the session's, as a user runs it: `atelier up` with an environment of its own, on
ports of its own (the session's offset + `extra_offset`), its state in a temporary folder, a small synthetic
catalogue loaded; search without the reranker, and no CLIP weights (vision waits for them)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from atelier.serving.settings import ROOT
from atelier.stack.launcher import Stack
from tests.integration.conftest import BELOW_EPHEMERAL, TEST_PORT_OFFSET


def atelier(*args: str, timeout_s: float = 600) -> str:
    """`atelier ARGS` in the current environment; its output, once it succeeded."""
    done = subprocess.run(
        [sys.executable, "-m", "atelier.cli", *args],
        cwd=ROOT,
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@contextmanager
def side_stack(state: Path, extra_offset: int, environment: Mapping[str, str], articles: int = 200) -> Iterator[Stack]:
    """The stack up, with `environment` over the defaults above, until the block ends; then down."""
    offset = TEST_PORT_OFFSET + extra_offset
    defaults = {
        "ATELIER_PORT_OFFSET": str(offset),
        **{
            f"ATELIER_{service}_PORT": str(default - BELOW_EPHEMERAL + offset)
            for service, default in (("SEARCH", 50051), ("RANKER", 50052), ("FEATURES", 50053))
        },
        "ATELIER_STATE_DIR": str(state),
        "ATELIER_MODEL_REPOSITORY": str(state / "model-repository"),
        "ATELIER_RERANK_MODEL_DIR": str(state / "no-reranker"),
        "ATELIER_CLIP_MODEL_DIR": str(state / "no-clip"),
        "ATELIER_FIRST_RUN_TRAINING": "0",
        "ATELIER_PROMETHEUS_ENABLED": "0",
        "SEARCH_RERANK_ENABLED": "0",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith(("ATELIER_", "SEARCH_", "STREAM_", "FEATURES_"))]:
            patch.delenv(name)
        for name, value in {**defaults, **environment}.items():
            patch.setenv(name, value)
        stack = Stack.from_env(say=lambda line: print(line, flush=True))
        try:
            atelier("up")
            atelier("catalog", "load", "--synthetic", "--articles", str(articles))
            yield stack
        finally:
            stack.down(quiet=True)
