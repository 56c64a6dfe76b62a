"""Settings: one model per process, validated at start, documented in docs/configuration.md, and
no variable of ours read anywhere else."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from atelier.serving.settings import ROOT, SettingsError
from atelier.stack import configuration
from services.search.config import SearchSettings

OUR_PREFIXES = ("ATELIER_", "SEARCH_", "FEATURES_", "RANKER_", "STREAM_", "VISION_", "OTEL_")
# A read of one of our variables by name: os.environ.get("X"), os.environ["X"], os.getenv("X").
NAMED_READ = re.compile(r"""(?:environ\.get\(|environ\[|getenv\()\s*f?["'](?:""" + "|".join(OUR_PREFIXES) + ")")
SETTINGS_SOURCE = ROOT / "atelier" / "serving" / "settings.py"


def test_docs_list_every_setting_of_every_process() -> None:
    documented = (ROOT / "docs" / "configuration.md").read_text()
    assert str(ROOT) not in documented, "paths in the checkout are shown relative to it: the docs hold for any clone"
    assert documented == configuration.markdown(), (
        "docs/configuration.md is out of date: run `atelier config --markdown > docs/configuration.md`"
    )


def test_no_variable_of_ours_is_read_outside_the_settings_models() -> None:
    readers = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for folder in ("atelier", "services", "triton_models", "benchmarks")
        for path in (ROOT / folder).rglob("*.py")
        if path != SETTINGS_SOURCE
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if NAMED_READ.search(line)
    ]
    assert not readers, readers


@pytest.mark.parametrize("process", list(configuration.PROCESSES))
def test_every_process_starts_with_its_defaults(process: str) -> None:
    for model in configuration.models(process):
        model.from_env({})
    names = [variable.name for variable in configuration.variables(process)]
    assert len(names) == len(set(names)) and all(name.startswith(OUR_PREFIXES) for name in names)


def test_a_bad_value_names_its_variable_and_why() -> None:
    with pytest.raises(SettingsError, match=r"SEARCH_RERANK_BUDGET_S \(budget_s\): Input should be greater"):
        SearchSettings.from_env({"SEARCH_RERANK_BUDGET_S": "-1"})
    with pytest.raises(SettingsError, match="SEARCH_BREAKER_FAILURE_RATE"):
        SearchSettings.from_env({"SEARCH_BREAKER_FAILURE_RATE": "2"})


def test_a_variable_a_process_does_not_know_stops_it() -> None:
    # A typo, or a name from before a rename (the budget was in milliseconds).
    with pytest.raises(SettingsError, match="unknown setting SEARCH_RERANK_BUDGET_MS"):
        SearchSettings.from_env({"SEARCH_RERANK_BUDGET_MS": "300"})
    SearchSettings.from_env({"FEATURES_PUBLISH_TIMEOUT_S": "1"})  # another process's: not search's business


def test_atelier_config_prints_the_effective_settings_and_fails_on_a_bad_one() -> None:
    run = [sys.executable, "-m", "atelier.cli", "config", "search"]
    shown = subprocess.run(run, capture_output=True, text=True, env={"SEARCH_MAX_K": "50"}, check=True).stdout
    assert "SEARCH_MAX_K=50  # default: 100" in shown.splitlines()
    assert "SEARCH_DEFAULT_K=10" in shown.splitlines()
    bad = subprocess.run(run, capture_output=True, text=True, env={"SEARCH_MAX_K": "many"})
    assert bad.returncode == 2 and "SEARCH_MAX_K" in bad.stderr
