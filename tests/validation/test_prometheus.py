"""Prometheus' configs and rules, checked by promtool (Debian's `prometheus` package, the version the local
stack runs, unpacked into build/tools/ by atelier.stack.prometheus): the local stack's rendered config,
compose's deploy/prometheus.yml, k8s' deploy/prometheus/kubernetes.yml, the one rules file they all load
(deploy/prometheus/rules.yml) and its unit tests (rules.test.yml). Then what they must agree on: every
component scraped everywhere, on the ports the code listens on, and the same rules file in each.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from atelier.serving.settings import ROOT, Endpoints
from atelier.stack import prometheus
from tests.validation.tools import venv_tool

COMPOSE_CONFIG = ROOT / "deploy" / "prometheus.yml"
K8S_CONFIG = ROOT / "deploy" / "prometheus" / "kubernetes.yml"
RULES_TESTS = ROOT / "deploy" / "prometheus" / "rules.test.yml"
# Jobs whose targets are our own processes, on the ports of atelier.serving.settings.Endpoints.
OUR_JOBS = ("search", "ranker", "features", "stream", "stream-retry", "triton", "envoy")


@pytest.fixture(scope="module")
def promtool() -> Path:
    return prometheus.promtool()


def run(promtool: Path, *args: str | Path, cwd: Path = ROOT) -> str:
    done = subprocess.run([promtool, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def rule_count() -> int:
    return sum(len(group["rules"]) for group in yaml.safe_load(prometheus.RULES.read_text())["groups"])


def with_our_rules(config: Path, into: Path) -> Path:
    """`config` with its rule files replaced by deploy/prometheus/rules.yml, where the container mounts it:
    `promtool check config` then checks the rules it would load too."""
    data = yaml.safe_load(config.read_text())
    data["rule_files"] = [str(prometheus.RULES)]
    into.write_text(yaml.safe_dump(data))
    return into


def test_the_local_stacks_config_is_valid(promtool: Path, tmp_path: Path) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(prometheus.render_config(Endpoints.from_env({"ATELIER_PORT_OFFSET": "6000"})))
    assert f"SUCCESS: {rule_count()} rules found" in run(promtool, "check", "config", config)


@pytest.mark.parametrize("config", [COMPOSE_CONFIG, K8S_CONFIG], ids=["compose", "k8s"])
def test_the_compose_and_k8s_configs_are_valid(promtool: Path, tmp_path: Path, config: Path) -> None:
    run(promtool, "check", "config", config)
    checked = run(promtool, "check", "config", with_our_rules(config, tmp_path / "p.yml"))
    assert f"SUCCESS: {rule_count()} rules found" in checked


def test_the_rules_are_valid_and_alert_as_their_tests_say(promtool: Path) -> None:
    run(promtool, "check", "rules", prometheus.RULES)
    assert "SUCCESS" in run(promtool, "test", "rules", RULES_TESTS.name, cwd=RULES_TESTS.parent)


def jobs(config: dict[str, Any]) -> dict[str, set[int]]:
    """job -> the ports it scrapes (static targets or DNS discovery)."""
    found: dict[str, set[int]] = {}
    for job in config["scrape_configs"]:
        ports = {int(target.rsplit(":", 1)[1]) for c in job.get("static_configs", []) for target in c["targets"]}
        ports |= {c["port"] for c in job.get("dns_sd_configs", [])}
        found[job["job_name"]] = ports
    return found


@pytest.mark.parametrize("config", [COMPOSE_CONFIG, K8S_CONFIG], ids=["compose", "k8s"])
def test_every_component_is_scraped_on_the_port_it_listens_on(config: Path) -> None:
    local = jobs(yaml.safe_load(prometheus.render_config(Endpoints.from_env({}))))
    deployed = jobs(yaml.safe_load(config.read_text()))
    # Redis and Kafka through their exporters (the local broker, Tansu, has none to run).
    assert {*OUR_JOBS, "edge-auth", "milvus", "redis", "kafka"} <= set(deployed), config.name
    for job in (*OUR_JOBS, "redis"):
        assert deployed[job] == local[job], job


def test_compose_scrapes_services_on_ports_they_expose() -> None:
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    for job in yaml.safe_load(COMPOSE_CONFIG.read_text())["scrape_configs"]:
        for lookup in job.get("dns_sd_configs", []):
            for name in lookup["names"]:
                assert str(lookup["port"]) in services[name]["expose"], (job["job_name"], name)


def test_compose_and_k8s_load_the_same_rules_file() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["prometheus"]
    mounts = dict(volume.split(":")[:2] for volume in compose["volumes"] if volume.startswith("./"))
    target = Path(mounts["./deploy/prometheus/rules.yml"])
    for config in (COMPOSE_CONFIG, K8S_CONFIG):
        (pattern,) = yaml.safe_load(config.read_text())["rule_files"]
        assert target.match(pattern), (config.name, pattern)
    rendered = subprocess.run(
        [venv_tool("kubectl"), "kustomize", ROOT / "k8s" / "overlays" / "local"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    (config_map,) = [
        d
        for d in yaml.safe_load_all(rendered)
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "atelier-prometheus"
    ]
    assert config_map["data"]["rules.yml"] == prometheus.RULES.read_text()
    assert config_map["data"]["prometheus.yml"] == K8S_CONFIG.read_text()
