"""The process table from /proc: for stopping, checking and measuring process trees."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    session: int
    state: str

    @property
    def alive(self) -> bool:
        return self.state != "Z"


def read(pid: int) -> Process | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after "(comm)", which may itself hold spaces and parentheses: state ppid pgrp session ...
    fields = stat.rsplit(")", 1)[1].split()
    return Process(pid, int(fields[1]), int(fields[3]), fields[0])


def processes() -> list[Process]:
    found = (read(int(entry.name)) for entry in Path("/proc").iterdir() if entry.name.isdigit())
    return [process for process in found if process is not None]


def alive(pid: int) -> bool:
    process = read(pid)
    return process is not None and process.alive


def descendants(roots: list[int]) -> set[int]:
    """The roots and every process below them."""
    children: dict[int, list[int]] = {}
    for process in processes():
        children.setdefault(process.ppid, []).append(process.pid)
    tree: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid not in tree:
            tree.add(pid)
            todo.extend(children.get(pid, []))
    return tree


def memory_kib(pid: int) -> dict[str, int]:
    """The memory figures of /proc/PID/status (VmRSS, VmHWM, ...) in KiB; empty once the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    figures = {}
    for line in status.splitlines():
        name, _, value = line.partition(":")
        if name.startswith("Vm") and value.strip().endswith("kB"):
            figures[name] = int(value.split()[0])
    return figures


def cpu_seconds(pids: set[int]) -> float:
    """User and system CPU time the processes have used so far (those gone count nothing)."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")
