"""What this CPU's instruction set offers the models, read from the kernel's /proc/cpuinfo (Linux, where
Triton runs; elsewhere nothing is assumed)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


@cache
def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The first processor's flags; empty when the file is not there or names none."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def has_amx_bf16(cpuinfo: Path = CPUINFO) -> bool:
    """Whether the CPU has AMX tiles for bf16 matrix products (Intel Sapphire Rapids and later), where
    oneDNN, under torch's bf16 Linear layers, multiplies several times faster than in fp32 or int8."""
    return {"amx_bf16", "amx_tile"} <= cpu_flags(cpuinfo)
