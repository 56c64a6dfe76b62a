"""benchmarks/capacity.py: its arithmetic on a tiny made-up figure file, and the real file it reads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from atelier.serving.settings import ROOT
from benchmarks import capacity

TINY = {
    "machine": "a test machine",
    "steps": {"search": [100, 1000], "click": [500]},
    "scenarios": {"cpu": "on cores", "gpu": "with a GPU"},
    "parts": [
        {"name": "edge", "serves": ["search", "click"], "rate": 60, "unit": "core", "replica_units": 1},
        {"name": "index", "serves": ["search"], "rate": 25, "unit": "core", "replica_units": 2, "max_replicas": 3},
        {
            "name": "model on cores",
            "scenario": "cpu",
            "serves": ["search"],
            "rate": 10,
            "unit": "core",
            "replica_units": 4,
        },
        {
            "name": "model on a GPU",
            "scenario": "gpu",
            "serves": ["search"],
            "rate": 300,
            "unit": "gpu",
            "measured": False,
        },
        {"name": "store", "serves": ["click"], "rate": 400, "unit": "core", "max_replicas": 1},
    ],
}
COMMON = {"measured": True, "source": "made up", "machine": "none", "moves_it": "more of it"}


def write(tmp_path: Path) -> Path:
    path = tmp_path / "figures.yaml"
    path.write_text(yaml.safe_dump({**TINY, "parts": [COMMON | part for part in TINY["parts"]]}))
    return path


def replicas(plan: capacity.Plan) -> dict[str, int]:
    return {need.part.name: need.replicas for need in plan.needs}


def test_replicas_walls_and_bottlenecks_of_a_tiny_figure_file(tmp_path: Path) -> None:
    figures = capacity.load(write(tmp_path))
    plans = {(p.kind, p.scenario, p.rate): p for p in capacity.plans(figures)}
    # Searches once per scenario, clicks once (no part of theirs has a scenario).
    assert set(plans) == {
        ("search", "cpu", 100),
        ("search", "cpu", 1000),
        ("search", "gpu", 100),
        ("search", "gpu", 1000),
        ("click", "cpu", 500),
    }
    # ceil(rate / (rate per unit x units per replica)).
    small = plans["search", "cpu", 100]
    assert replicas(small) == {"edge": 2, "index": 2, "model on cores": 3}
    assert [n.units for n in small.needs] == [2, 4, 12]
    # No wall passed: the part with the least per unit (the model on cores, 10/s a core).
    assert not small.walls and small.bottleneck.part.name == "model on cores"
    big = plans["search", "cpu", 1000]
    assert replicas(big) == {"edge": 17, "index": 20, "model on cores": 25}
    # The index can serve 3 x 50 = 150/s: a wall first passed at this step is its first bottleneck.
    assert [n.part.name for n in big.new_walls] == ["index"] and big.bottleneck.part.name == "index"
    gpu = plans["search", "gpu", 100]
    assert replicas(gpu) == {"edge": 2, "index": 2, "model on a GPU": 1}
    assert "| model on a GPU | 300/s per gpu (not measured here) |" in capacity.render(figures)
    assert gpu.bottleneck.part.name == "index"  # 25/s a core: less than the edge's 60
    # Clicks: the store's single replica serves 400/s, so 500/s passes its wall.
    clicks = plans["click", "cpu", 500]
    assert replicas(clicks) == {"edge": 9, "store": 2} and clicks.bottleneck.part.name == "store"


def test_a_wall_passed_at_an_earlier_step_counts_as_moved(tmp_path: Path) -> None:
    figures = capacity.load(write(tmp_path))
    later = capacity.plan(figures, "search", 2000, "cpu", previous_rate=1000)
    assert [n.part.name for n in later.walls] == ["index"] and not later.new_walls
    assert later.bottleneck.part.name == "model on cores"


def test_the_script_prints_every_step_of_the_real_figures() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.capacity"], capture_output=True, text=True, check=True, cwd=ROOT
    )
    figures = capacity.load()
    for kind, rates in figures.steps.items():
        for rate in rates:
            assert f"### {rate:,} {capacity.PLURAL[kind]}/s" in result.stdout
    assert result.stdout.count("First bottleneck:") == len(capacity.plans(figures))
    # The figures not measured on this project's machines say so.
    assert all(part.machine and part.source for part in figures.parts)
    for part in figures.parts:
        assert (f"| {part.name} | {part.rate:g}/s per {part.unit} (not measured here) |" in result.stdout) is (
            not part.measured
        )


def test_docs_capacity_shows_the_current_output() -> None:
    text = capacity.DOC.read_text()
    assert text == capacity.in_doc(text, capacity.render(capacity.load())), (
        "docs/capacity.md is out of date: run `python -m benchmarks.capacity --doc`"
    )
