"""Metric names: the ones a PromQL expression reads, the ones a /metrics page exposes, and the checked list
of the servers' (tests/data/exported_metrics.yaml)."""

from __future__ import annotations

import re

from atelier.serving.settings import ROOT

# The servers' metric names (Envoy, Triton, Milvus, the Redis exporter, Prometheus) from a live scrape of
# the local stack, and the Kafka exporter's (compose, k8s) from its documentation.
EXTERNAL = ROOT / "tests" / "data" / "exported_metrics.yaml"
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPINGS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NUMBERS = re.compile(r"(?<![\w:])\d+(?:\.\d+)?(?:e[+-]?\d+)?\b")
_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*+(?!\s*\()")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"}
_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)[\s{]", re.MULTILINE)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (label names, functions, keywords and numbers left out)."""
    text = _STRINGS.sub('""', expr)
    for pattern in (_MATCHERS, _RANGES, _GROUPINGS, _NUMBERS):
        text = pattern.sub(" ", text)
    names = {match.group() for match in _NAME.finditer(text)}
    return {name for name in names if name not in _KEYWORDS and name.lower() not in {"inf", "nan"}}


def exposed_names(text: str) -> set[str]:
    """The sample names of a /metrics page, as written (a parser would add `_total` to some counters)."""
    return set(_SAMPLE.findall(text))
