"""Reading the end of a log file."""

from __future__ import annotations

import os
from pathlib import Path


def tail(path: Path, lines: int) -> list[str]:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 16384))
            return [line.decode(errors="replace") + "\n" for line in handle.read().splitlines()[-lines:]]
    except OSError:
        return []
