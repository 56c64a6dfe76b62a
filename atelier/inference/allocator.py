"""glibc's malloc keeps the memory a forward pass frees, for the next one.

By default glibc hands every allocation above a sliding threshold to its own mmap and gives the top of
the heap back to the kernel once 128 KiB of it is free. A forward pass allocates its activations (tens
of MB for 100 pairs) anew every call, so each call faulted every page of them in again: ~13,000 minor
faults per rerank of 100 pairs of 48 tokens, a quarter of its time in bf16 on 2 cores
(docs/performance.md). Fixed thresholds keep freed memory in the heap, where the next call reuses it:
the process's resident memory stays at its peak instead of falling back between calls.

glibc's own tunables (``GLIBC_TUNABLES=glibc.malloc...``, ``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_``) win: when the operator set any, nothing is changed.
"""

from __future__ import annotations

import ctypes
import os
import platform
from collections.abc import Mapping

# mallopt(3) parameters, from glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# glibc's largest mmap threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX): larger blocks are still mapped.
MMAP_THRESHOLD = 32 * 1024 * 1024
# Free heap kept before any is given back: more than a forward pass of these models frees.
TRIM_THRESHOLD = 1024 * 1024 * 1024

OPERATOR_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


def operator_tuned(environ: Mapping[str, str]) -> bool:
    """Whether the environment sets glibc's malloc tunables itself."""
    return any(name in environ for name in OPERATOR_VARIABLES) or "glibc.malloc." in environ.get("GLIBC_TUNABLES", "")


def keep_freed_memory(environ: Mapping[str, str] | None = None) -> str:
    """Fix glibc's mmap and trim thresholds for this process; says what was done, for the load log line."""
    environ = os.environ if environ is None else environ
    if platform.libc_ver()[0] != "glibc":
        return "allocator unchanged (not glibc)"
    if operator_tuned(environ):
        return "allocator as glibc's tunables in the environment say"
    mallopt = ctypes.CDLL(None).mallopt
    if not (mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        return "allocator unchanged (mallopt refused)"
    return "freed memory kept for reuse"
