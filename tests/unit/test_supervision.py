"""Supervision of the local stack: supervisord's restart settings, the restart record, `atelier status`."""

from __future__ import annotations

import configparser
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from atelier.serving.settings import Endpoints
from atelier.stack import restarts
from atelier.stack.components import Component
from atelier.stack.launcher import Stack
from atelier.stack.restarts import Exit, Record, Restarts, describe_exit, exit_words
from atelier.stack.status_table import format_status
from atelier.stack.supervisor import RESTARTS_LISTENER, Program, Supervisor, render_config
from services.stream.lag import CONSUMER_LAG, LagCollector, Partition, topic_lags


def _parse(text: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser()
    parser.read_string(text)
    return parser


def test_long_running_programs_restart_with_backoff_and_one_shot_jobs_only_after_a_failure(tmp_path: Path) -> None:
    server = Program("search", ["python", "-m", "services.search"], {}, tmp_path / "search.log", start_s=3)
    job = Program("first-run", ["python", "-m", "job"], {}, tmp_path / "first-run.log", one_shot=True)
    parser = _parse(render_config(tmp_path, tmp_path, [server, job]))
    search, first_run = parser["program:search"], parser["program:first-run"]
    assert search["autorestart"] == "true"
    assert search["startsecs"] == "3" and int(search["startretries"]) > 0
    assert first_run["autorestart"] == "unexpected" and first_run["exitcodes"] == "0"
    # The launcher starts them tier by tier.
    assert search["autostart"] == first_run["autostart"] == "false"


def test_an_event_listener_records_process_state_changes(tmp_path: Path) -> None:
    listener = _parse(render_config(tmp_path, tmp_path, []))[f"eventlistener:{RESTARTS_LISTENER}"]
    assert listener["events"] == "PROCESS_STATE"
    assert listener["command"].endswith(f"-m atelier.stack.restarts {tmp_path}")


def test_restarts_count_supervisords_own_starts_and_keep_the_last_exit() -> None:
    record = Restarts()
    exited = {"processname": "stream", "from_state": "RUNNING", "expected": "0"}
    assert record.on_event("PROCESS_STATE_EXITED", exited, "terminated by SIGKILL")
    record.on_event("PROCESS_STATE_STARTING", {"processname": "stream", "from_state": "EXITED"}, "")
    record.on_event("PROCESS_STATE_BACKOFF", {"processname": "stream", "from_state": "STARTING"}, "exit status 1")
    record.on_event("PROCESS_STATE_STARTING", {"processname": "stream", "from_state": "BACKOFF"}, "")
    # Started by a command (atelier up), not a restart.
    record.on_event("PROCESS_STATE_STARTING", {"processname": "redis", "from_state": "STOPPED"}, "")
    record.on_event("PROCESS_STATE_STARTING", {"processname": "search", "from_state": "FATAL"}, "")
    again = Restarts.from_json(record.to_json())
    assert again.programs["stream"].restarts == 2
    assert again.programs["stream"].last_exit is not None
    assert again.programs["stream"].last_exit.how == "exit status 1"
    assert again.programs["redis"] == Record() and again.programs["search"] == Record()


def test_a_missing_or_broken_record_reads_as_empty(tmp_path: Path) -> None:
    assert restarts.load(tmp_path) == Restarts()
    (tmp_path / restarts.RECORD_FILE).write_text("{not json")
    assert restarts.load(tmp_path) == Restarts()


def test_the_way_a_program_ended_comes_from_supervisords_log(tmp_path: Path) -> None:
    log = tmp_path / "supervisord.log"
    log.write_text(
        "2026-01-01 10:00:00,000 WARN exited: stream (exit status 1; not expected)\n"
        "2026-01-01 10:00:01,000 WARN exited: stream-retry (terminated by SIGTERM; not expected)\n"
        "2026-01-01 10:00:02,000 WARN exited: stream (terminated by SIGKILL; not expected)\n"
    )
    assert exit_words(log, "stream") == "terminated by SIGKILL"
    assert exit_words(log, "stream-retry") == "terminated by SIGTERM"
    assert exit_words(log, "search") == "exited"


def test_the_last_exit_column_says_how_and_when() -> None:
    assert describe_exit(None) == "-"
    assert describe_exit(Exit(1000.0, "terminated by SIGKILL", False), now=1012.0) == "SIGKILL 12s ago"
    assert describe_exit(Exit(1000.0, "exit status 1", False), now=1000.0 + 300) == "exit 1 5m ago"


def _row(component: str, state: str, ready: str, **extra: str) -> dict[str, str]:
    row = {"component": component, "state": state, "pid": "1", "ports": "1", "restarts": "0", "last exit": "-"}
    return row | {"ready": ready, "lag": "-", "log": f"/logs/{component}.log"} | extra


def test_status_shows_restarts_last_exit_lag_and_the_log_of_a_failed_component() -> None:
    rows = [
        _row("stream", "RUNNING", "ready", restarts="2", lag="clicks=7", **{"last exit": "SIGKILL 3s ago"}),
        _row("ranker", "FATAL", "failed", restarts="5", tail="boom\nTraceback: bad weights\n"),
    ]
    text = format_status(rows)
    header, stream, ranker, *rest = text.splitlines()
    assert header.split() == ["COMPONENT", "STATE", "PID", "PORTS", "RESTARTS", "LAST", "EXIT", "READY", "LAG"]
    assert stream.split() == ["stream", "RUNNING", "1", "1", "2", "SIGKILL", "3s", "ago", "ready", "clicks=7"]
    assert "failed" in ranker
    assert rest[0].startswith("ranker failed") and "/logs/ranker.log" in rest[0]
    assert rest[1:] == ["    | boom", "    | Traceback: bad weights"]


def test_lag_sums_the_assigned_partitions_of_each_topic() -> None:
    assigned = [Partition("clicks", 0), Partition("clicks", 1), Partition("clicks", 2), Partition("retry", 0)]
    end = {Partition("clicks", 0): 10, Partition("clicks", 1): 5, Partition("retry", 0): 3, Partition("gone", 0): 9}
    committed = {Partition("clicks", 0): 4, Partition("clicks", 1): 9}
    # clicks: 6, plus 0 (a committed offset past the end: a broker that restarted empty), plus 0 (no end yet).
    assert topic_lags(assigned, end, committed) == {"clicks": 6, "retry": 3}
    families = list(LagCollector(lambda: (assigned, end, committed)).collect())
    assert [(s.name, s.labels, s.value) for s in families[0].samples] == [
        (CONSUMER_LAG, {"topic": "clicks"}, 6),
        (CONSUMER_LAG, {"topic": "retry"}, 3),
    ]


def _wait(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture
def supervisor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Supervisor, Path]]:
    # A short path: the unix socket's name has a length limit.
    state = tmp_path_factory.mktemp("sv")
    (state / "logs").mkdir()
    python = sys.executable
    programs = [
        Program(
            "sleeper", [python, "-c", "import time; time.sleep(600)"], {}, state / "logs" / "sleeper.log", start_s=1
        ),
        Program(
            "crasher",
            [python, "-c", "import sys; print('bad weights'); sys.exit(3)"],
            {},
            state / "logs" / "crasher.log",
            start_s=1,
            start_retries=1,
        ),
    ]
    (state / "supervisord.conf").write_text(render_config(state, state, programs))
    supervisor = Supervisor(state)
    supervisor.start_daemon()
    try:
        yield supervisor, state
    finally:
        supervisor.shutdown()


def test_supervisord_restarts_a_killed_program_and_gives_up_on_one_that_keeps_crashing(
    supervisor: tuple[Supervisor, Path],
) -> None:
    supervisor_, state = supervisor
    supervisor_.start("sleeper")
    _wait(lambda: supervisor_.info("sleeper")["statename"] == "RUNNING")
    first_pid = supervisor_.info("sleeper")["pid"]
    supervisor_.signal("sleeper", "KILL")
    _wait(
        lambda: (
            supervisor_.info("sleeper")["statename"] == "RUNNING" and supervisor_.info("sleeper")["pid"] != first_pid
        )
    )
    _wait(lambda: restarts.load(state).programs.get("sleeper", Record()).restarts == 1)
    last = restarts.load(state).programs["sleeper"].last_exit
    assert last is not None and last.how == "terminated by SIGKILL" and not last.expected

    supervisor_.start("crasher")
    _wait(lambda: supervisor_.info("crasher")["statename"] == "FATAL")
    _wait(lambda: restarts.load(state).programs.get("crasher", Record()).restarts == 1)
    crashed = restarts.load(state).programs["crasher"].last_exit
    assert crashed is not None and crashed.how == "exit status 3"
    assert "bad weights" in (state / "logs" / "crasher.log").read_text()


class _OtherSwitches(Stack):
    """A stack whose settings name a component supervisord was not given (up ran with other switches)."""

    def components(self) -> list[Component]:
        return [Component("first-run", 9, ["true"], (), check=lambda: None, one_shot=True)]


def test_down_stops_what_supervisord_runs_even_when_the_settings_changed_since_up(
    supervisor: tuple[Supervisor, Path],
) -> None:
    supervisor_, state = supervisor
    supervisor_.start("sleeper")
    _wait(lambda: supervisor_.info("sleeper")["statename"] == "RUNNING")
    _OtherSwitches(Endpoints.from_env(), state, say=lambda _: None).down(quiet=True)
    assert not supervisor_.is_running()


def test_a_reload_adds_new_programs_and_updates_or_drops_stopped_ones(supervisor: tuple[Supervisor, Path]) -> None:
    """`atelier up` on a running stack (ATELIER_SEARCH_REPLICAS changed, say): new programs are added, a
    stopped one takes its new config, one gone from the config is dropped; a running one is left alone."""
    supervisor_, state = supervisor
    supervisor_.start("sleeper")
    _wait(lambda: supervisor_.info("sleeper")["statename"] == "RUNNING")
    pid = supervisor_.info("sleeper")["pid"]
    python = sys.executable
    marker = state / "updated"
    programs = [
        Program("sleeper", [python, "-c", "import time; time.sleep(601)"], {}, state / "logs" / "sleeper.log"),
        Program(
            "crasher", [python, "-c", f"open({str(marker)!r}, 'w')"], {}, state / "logs" / "crasher.log", start_s=0
        ),
        Program("sleeper-2", [python, "-c", "import time; time.sleep(600)"], {}, state / "logs" / "sleeper-2.log"),
    ]
    (state / "supervisord.conf").write_text(render_config(state, state, programs))
    supervisor_.reload()
    assert supervisor_.info("sleeper")["pid"] == pid  # running: left alone
    supervisor_.start("crasher")  # stopped: its new command
    _wait(marker.exists)
    assert supervisor_.info("sleeper-2")["statename"] == "STOPPED"  # added
    (state / "supervisord.conf").write_text(render_config(state, state, programs[:2]))
    supervisor_.stop("sleeper-2")
    supervisor_.reload()
    assert "sleeper-2" not in {info["name"] for info in supervisor_.all_info()}  # gone and stopped: dropped


def test_a_reload_stops_and_drops_a_running_program_gone_from_the_config(
    supervisor: tuple[Supervisor, Path],
) -> None:
    """`atelier up` with fewer ATELIER_STREAM_WORKERS: the workers no longer configured stop and leave."""
    supervisor_, state = supervisor
    supervisor_.start("sleeper")
    _wait(lambda: supervisor_.info("sleeper")["statename"] == "RUNNING")
    (state / "supervisord.conf").write_text(render_config(state, state, []))
    supervisor_.reload()
    assert "sleeper" not in {info["name"] for info in supervisor_.all_info()}
