from __future__ import annotations

from collections.abc import Iterator

import pytest

from atelier.inference import reranker


@pytest.fixture(autouse=True, scope="session")
def cpu_without_amx() -> Iterator[None]:
    """Unit tests see the same CPU wherever they run: one without AMX tiles, where the reranker's auto
    precision is fp32 (tests/unit/test_cpu_features.py covers the other case). Session-wide, so that
    module fixtures' models load under it too."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reranker, "has_amx_bf16", lambda: False)
        yield
