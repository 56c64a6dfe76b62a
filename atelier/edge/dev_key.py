"""The local stack's dev key: `atelier up` creates a key named `dev` when there is no working one and
writes it to `dev-api-key` in the state folder (mode 0600), where our clients find it (atelier.edge.client)."""

from __future__ import annotations

from pathlib import Path

from atelier.edge.keys import KeyFile
from atelier.edge.settings import DEV_KEY_FILE, DEV_KEY_NAME
from atelier.files import write_private

# Generous: the tests and benchmarks send a few hundred requests per second at most.
DEV_RATE_PER_S = 1000.0
DEV_BURST = 2000


def dev_key_path(state: Path) -> Path:
    return state / DEV_KEY_FILE


def ensure_dev_key(keys: KeyFile, state: Path) -> bool:
    """Makes sure `dev-api-key` holds a key the key file knows; True when a new one was made."""
    path = dev_key_path(state)
    if path.is_file() and keys.lookup(path.read_text().strip()) is not None:
        return False
    if any(key.name == DEV_KEY_NAME for key in keys.keys()):
        keys.revoke(DEV_KEY_NAME)  # its plaintext is lost: replace it
    key = keys.create(DEV_KEY_NAME, DEV_RATE_PER_S, DEV_BURST)
    state.mkdir(parents=True, exist_ok=True)
    write_private(path, key + "\n")
    return True
