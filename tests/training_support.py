"""What both trainers' tests check the same way."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch


@pytest.fixture
def torch_state() -> Iterator[None]:
    """Training switches torch to deterministic kernels and all cores; other tests get torch back as it was."""
    deterministic, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    yield
    torch.use_deterministic_algorithms(deterministic)
    torch.set_num_threads(threads)


def assert_reproducible(train: Callable[[int], dict[str, torch.Tensor]], telling_weight: str) -> None:
    """The same seed trains identical weights; another seed changes `telling_weight`."""
    first, second = train(3), train(3)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)
    other = train(4)
    assert not torch.equal(first[telling_weight], other[telling_weight])
