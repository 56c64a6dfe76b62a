"""The real stack, started once for the integration tests on ports of its own."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from atelier.config import ROOT
from atelier.platform.stack import Stack

# Beside a developer's running stack (default ports), never on top of it.
TEST_STACK_ENV = {
    "ATELIER_PORT_OFFSET": "1000",
    "ATELIER_STATE_DIR": str(ROOT / "build" / "test-stack"),
}


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    previous = {key: os.environ.get(key) for key in TEST_STACK_ENV}
    os.environ.update(TEST_STACK_ENV)
    stack = Stack.from_env(say=lambda line: print(line, flush=True))
    stack.down(quiet=True)  # leftovers of an interrupted run
    stack.up()
    try:
        yield stack
    finally:
        stack.down(quiet=True)
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
