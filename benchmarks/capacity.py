"""The capacity model: how many replicas of each part serve a rate of searches or clicks.

    python -m benchmarks.capacity [--figures benchmarks/capacity_figures.yaml]

Reads the measured figures (benchmarks/capacity_figures.yaml: each part's requests per second per
core or GPU, with its source in docs/performance.md) and, for every step the file lists (1k, 10k,
100k searches/s; 10k, 100k clicks/s), prints each part's replicas, cores and GPUs, the walls that
adding replicas does not pass, and the first bottleneck with what moves it: the first wall the step
passes (walls passed at an earlier step count as moved), else the part with the least throughput
per core or GPU. Searches are planned
once per scenario (CPU only; the reranker on GPUs). Every part scales linearly with its replicas:
the figures are per unit, from one machine, so the output is an estimate to size a first
deployment, to be checked by measuring it.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, PositiveFloat, PositiveInt

FIGURES = Path(__file__).with_name("capacity_figures.yaml")
DOC = Path(__file__).parents[1] / "docs" / "capacity.md"
# docs/capacity.md holds the output between these lines (`--doc` rewrites it).
BEGIN, END = "<!-- benchmarks/capacity.py: begin -->", "<!-- benchmarks/capacity.py: end -->"
Kind = Literal["search", "click"]
PLURAL = {"search": "searches", "click": "clicks"}


class Part(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    serves: list[Kind]
    rate: PositiveFloat  # requests per second per unit
    unit: Literal["core", "gpu"]
    replica_units: PositiveInt = 1
    max_replicas: PositiveInt | None = None
    why: str = ""
    scenario: str | None = None
    measured: bool
    bound: Literal["lower"] | None = None
    source: str
    machine: str
    moves_it: str

    @property
    def per_replica(self) -> float:
        return self.rate * self.replica_units


class Figures(BaseModel):
    model_config = ConfigDict(extra="forbid")

    machine: str
    steps: dict[Kind, list[PositiveInt]]
    scenarios: dict[str, str]
    parts: list[Part]

    def parts_for(self, kind: Kind, scenario: str) -> list[Part]:
        return [p for p in self.parts if kind in p.serves and p.scenario in (None, scenario)]


@dataclass(frozen=True)
class Need:
    part: Part
    replicas: int

    @property
    def units(self) -> int:
        return self.replicas * self.part.replica_units

    @property
    def ceiling(self) -> float:
        """The most requests/s the part serves before its wall (infinite without one)."""
        return math.inf if self.part.max_replicas is None else self.part.max_replicas * self.part.per_replica

    @property
    def walled(self) -> bool:
        """Needs more replicas than the part can have."""
        return self.part.max_replicas is not None and self.replicas > self.part.max_replicas


@dataclass(frozen=True)
class Plan:
    kind: Kind
    rate: int
    scenario: str
    needs: list[Need]
    previous_rate: int = 0  # the step before (its walls already moved)

    @property
    def walls(self) -> list[Need]:
        return [n for n in self.needs if n.walled]

    @property
    def new_walls(self) -> list[Need]:
        """Walls this step passes and the step before did not."""
        return [n for n in self.walls if n.ceiling >= self.previous_rate]

    @property
    def bottleneck(self) -> Need:
        """What stops this step first: of the walls it is the first to pass, the lowest; else (every
        wall moved) the part with the least throughput per core or GPU, which most of the hardware goes to."""
        if self.new_walls:
            return min(self.new_walls, key=lambda n: n.ceiling)
        return min(self.needs, key=lambda n: n.part.rate)


def load(path: Path = FIGURES) -> Figures:
    return Figures.model_validate(yaml.safe_load(path.read_text()))


def plan(figures: Figures, kind: Kind, rate: int, scenario: str, previous_rate: int = 0) -> Plan:
    needs = [Need(p, math.ceil(rate / p.per_replica)) for p in figures.parts_for(kind, scenario)]
    return Plan(kind, rate, scenario, needs, previous_rate)


def plans(figures: Figures) -> list[Plan]:
    """Every step of the file: searches in each scenario, clicks once (no scenario part serves them)."""
    result = []
    for kind, rates in figures.steps.items():
        scenarios = [s for s in figures.scenarios if any(p.scenario == s for p in figures.parts_for(kind, s))]
        steps = list(zip([0, *rates[:-1]], rates, strict=True))  # (the step before, this step)
        for scenario in scenarios or [next(iter(figures.scenarios))]:
            result += [plan(figures, kind, rate, scenario, previous) for previous, rate in steps]
    return result


def _figure(part: Part) -> str:
    note = " (lower bound)" if part.bound == "lower" else "" if part.measured else " (not measured here)"
    return f"{part.rate:g}/s per {part.unit}{note}"


def render(figures: Figures) -> str:
    lines = ["### The figures", "", "| part | figure | source (docs/performance.md) | machine |", "|---|---|---|---|"]
    lines += [f"| {p.name} | {_figure(p)} | {p.source} | {p.machine} |" for p in figures.parts]
    lines.append("")
    for p in plans(figures):
        scenario = f" ({p.scenario}: {figures.scenarios[p.scenario]})" if p.kind == "search" else ""
        lines += [f"### {p.rate:,} {PLURAL[p.kind]}/s{scenario}", ""]
        lines += ["| part | figure | per replica | replicas | cores | GPUs |", "|---|---|---|---|---|---|"]
        for n in p.needs:
            cores, gpus = (n.units, 0) if n.part.unit == "core" else (0, n.units)
            wall = f" (at most {n.part.max_replicas}: {n.part.why})" if n.walled else ""
            lines.append(
                f"| {n.part.name} | {_figure(n.part)} | {n.part.per_replica:,.1f}/s | {n.replicas:,}{wall} "
                f"| {cores:,} | {gpus:,} |"
            )
        cores = sum(n.units for n in p.needs if n.part.unit == "core")
        gpus = sum(n.units for n in p.needs if n.part.unit == "gpu")
        first = p.bottleneck
        reason = "the first wall it passes" if first.walled else "the least per core or GPU, every wall moved"
        lines += [
            f"| total | | | | {cores:,} | {gpus:,} |",
            "",
            f"First bottleneck: **{first.part.name}** ({reason}). Moves it: {first.part.moves_it}.",
        ]
        for wall in p.walls:
            if wall is not first:
                moved = "" if wall in p.new_walls else " (moved at an earlier step)"
                lines.append(f"Also past its wall{moved}: {wall.part.name}. Moves it: {wall.part.moves_it}.")
        lines.append("")
    return "\n".join(lines).rstrip("\n")


def in_doc(text: str, output: str) -> str:
    """`text` (docs/capacity.md) with `output` between its markers."""
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{output}\n{END}{tail}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--figures", type=Path, default=FIGURES, help="the measured figures (YAML)")
    parser.add_argument("--doc", action="store_true", help=f"write the output into {DOC.name} too")
    args = parser.parse_args(argv)
    output = render(load(args.figures))
    print(output)
    if args.doc:
        DOC.write_text(in_doc(DOC.read_text(), output))


if __name__ == "__main__":
    main()
