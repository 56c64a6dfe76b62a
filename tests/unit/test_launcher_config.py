"""The configs the launcher writes: supervisord's and Envoy's."""

from __future__ import annotations

import configparser
from pathlib import Path

from atelier.config import Endpoints
from atelier.platform import envoy
from atelier.platform.supervisor import Program, render_config


def test_supervisord_config_escapes_and_stops_whole_process_groups(tmp_path: Path) -> None:
    program = Program(
        name="search",
        command=["/venv/bin/python", "-m", "services.search", "--flag=50%"],
        environment={"ATELIER_LOG_LEVEL": "INFO", "WEIRD": 'a "b" %c'},
        log_file=tmp_path / "search.log",
    )
    text = render_config(tmp_path, tmp_path, [program])
    parser = configparser.RawConfigParser()
    parser.read_string(text)
    section = parser["program:search"]
    assert section["command"] == "/venv/bin/python -m services.search --flag=50%%"
    assert section["autostart"] == "false"
    assert section["stopasgroup"] == "true" and section["killasgroup"] == "true"
    assert 'WEIRD="a \\"b\\" %%c"' in section["environment"]
    assert parser["unix_http_server"]["file"] == str(tmp_path / "supervisor.sock")


def test_envoy_config_is_valid_for_envoy(tmp_path: Path) -> None:
    endpoints = Endpoints.from_env({"ATELIER_PORT_OFFSET": "3000"})
    config = tmp_path / "envoy.yaml"
    config.write_text(envoy.render_config(endpoints))
    envoy.validate(config)  # raises with Envoy's explanation when invalid
    assert "port_value: 11080" in config.read_text()
