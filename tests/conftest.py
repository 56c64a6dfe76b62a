from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Runs tests marked `last` (the stack's teardown checks) after all others."""
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)
