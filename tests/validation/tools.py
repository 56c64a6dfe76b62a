"""The validators `make install` puts into the virtual environment (pinned dev dependencies in pyproject.toml)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def venv_tool(name: str) -> Path:
    """The `name` executable beside this Python (the project's .venv/bin), else on PATH; fails the test if neither."""
    beside = Path(sys.executable).with_name(name)
    found = beside if beside.is_file() else shutil.which(name)
    assert found, f"{name} is not installed: run `make install` (a pinned dev dependency in pyproject.toml)"
    return Path(found)
