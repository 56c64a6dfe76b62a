"""glibc keeps what a forward pass frees once the model process asks it to (atelier/inference/allocator.py)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from atelier.inference.allocator import keep_freed_memory, operator_tuned

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")

# A forward pass's activations, 20 times over: four blocks of 15 MB live at once, then freed; prints the
# page faults it took.
FAULTS = """
import resource, sys
from atelier.inference.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    print(keep_freed_memory({}), file=sys.stderr)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    blocks = [bytearray(15_000_000) for _ in range(4)]
    del blocks
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True)
    return int(done.stdout)


@glibc_only
def test_freed_blocks_are_reused_instead_of_faulted_in_again() -> None:
    # glibc's default gives the freed blocks back to the kernel and faults ~14,600 pages in every time;
    # kept, only the first time.
    assert _faults("default") > 10 * 14_600
    assert _faults("keep") < 2 * 14_600


@pytest.mark.parametrize(
    "environ",
    [
        {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"},
        {"MALLOC_MMAP_THRESHOLD_": "131072"},
        {"MALLOC_TRIM_THRESHOLD_": "0"},
    ],
)
def test_the_operators_own_tunables_win(environ: dict[str, str]) -> None:
    assert operator_tuned(environ)
    if platform.libc_ver()[0] == "glibc":
        assert keep_freed_memory(environ) == "allocator as glibc's tunables in the environment say"


def test_other_tunables_do_not_count() -> None:
    assert not operator_tuned({"GLIBC_TUNABLES": "glibc.cpu.x86_rep_movsb_threshold=1"})
