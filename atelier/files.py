"""Files that hold secrets."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_private(path: Path, text: str) -> None:
    """Writes a file only its owner may read (0600), whatever mode an earlier one had. Atomically: a reader
    (a server starting while `atelier up` or `status` rewrites its config) sees the old file or the new
    one, never a half-written or empty one; an unchanged file is left alone."""
    try:
        if path.read_text() == text and (path.stat().st_mode & 0o777) == 0o600:
            return
    except OSError:
        pass
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
