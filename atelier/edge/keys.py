"""API keys, stored hashed in one JSON file: created and revoked by `atelier keys`, read by the
authorization service, which picks up every change on its next request (no restart).

A key is `atk_` and 32 random bytes (URL-safe base64); only its SHA-256 is kept, beside its name
(which logs and metrics show), when it was created and its own rate limit, if any. A key of 256
random bits needs no salt: the hash cannot be reversed by guessing.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

KEY_PREFIX = "atk_"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


class KeyFileError(ValueError):
    """A key cannot be created or revoked; the message says why."""


@dataclass(frozen=True)
class ApiKey:
    name: str
    sha256: str
    created: str
    rate_per_s: float | None = None
    burst: int | None = None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyFile:
    """The key file at `path`; `lookup` re-reads it whenever it changed (its stat differs)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._by_hash: dict[str, ApiKey] = {}

    # -- reading ------------------------------------------------------------

    def keys(self) -> list[ApiKey]:
        """Every key in the file (none when there is no file)."""
        try:
            document = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        return [ApiKey(**entry) for entry in document.get("keys", [])]

    def lookup(self, key: str) -> ApiKey | None:
        """The key's entry, or None for a key that is unknown or revoked."""
        self._refresh()
        return self._by_hash.get(hash_key(key))

    def _refresh(self) -> None:
        try:
            stat = self.path.stat()
            stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp:
            return
        try:
            keys = self.keys()
        except (OSError, ValueError, TypeError) as error:
            # A file being edited by hand and saved half-way: keep the keys we had, try again next time.
            log.error(
                "cannot read the key file; keeping the previous keys",
                extra={"path": str(self.path), "error": str(error)},
            )
            return
        self._by_hash = {key.sha256: key for key in keys}
        self._stamp = stamp
        log.info("key file loaded", extra={"path": str(self.path), "keys": len(keys)})

    # -- writing (`atelier keys`) ----------------------------------------------

    def create(self, name: str, rate_per_s: float | None = None, burst: int | None = None) -> str:
        """Adds a key named `name` and returns it: the only time it is shown."""
        if not NAME.fullmatch(name):
            raise KeyFileError(
                f"bad key name {name!r}: letters, digits, '_', '.', '-', at most 63, starting with a letter or digit"
            )
        if (rate_per_s is not None and rate_per_s <= 0) or (burst is not None and burst <= 0):
            raise KeyFileError("--rate and --burst must be positive")
        key = new_key()
        with self._locked():
            keys = self.keys()
            if any(existing.name == name for existing in keys):
                raise KeyFileError(f"a key named {name!r} exists; revoke it first")
            created = datetime.now(UTC).isoformat(timespec="seconds")
            self._write([*keys, ApiKey(name, hash_key(key), created, rate_per_s, burst)])
        return key

    def revoke(self, name: str) -> None:
        with self._locked():
            keys = self.keys()
            if not any(key.name == name for key in keys):
                raise KeyFileError(f"no key named {name!r}")
            self._write([key for key in keys if key.name != name])

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time (two `atelier keys` at once would otherwise lose one's change)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _write(self, keys: list[ApiKey]) -> None:
        """Replaces the file at once (a reader sees the old file or the new one, never half of one), mode 0600."""
        document = {"keys": [asdict(key) for key in keys]}
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(handle, "w") as out:
                json.dump(document, out, indent=2)
                out.write("\n")
            os.chmod(temporary, 0o600)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
