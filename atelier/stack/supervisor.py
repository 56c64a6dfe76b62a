"""Runs the stack's processes under supervisord and talks to it over XML-RPC.

supervisord owns every process `atelier up` starts: logs, pid tracking, stopping
whole process groups and restarting what crashed are its job, not ours. A program
that exits on its own is started again at once; one that exits within `start_s` of
its start waits 1, 2, 3, ... s before the next try (supervisord's BACKOFF) and is
FATAL after `start_retries` such tries. An event listener (atelier.stack.restarts)
records the restarts and the last exit of each program.
"""

from __future__ import annotations

import subprocess
import sys
import time
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor.xmlrpc import SupervisorTransport

from atelier.stack import procfs

# The event listener that records restarts and exits (atelier.stack.restarts).
RESTARTS_LISTENER = "restarts"


@dataclass(frozen=True)
class Program:
    name: str
    command: list[str]
    environment: dict[str, str]
    log_file: Path
    stop_wait_s: int = 15
    # A one-shot job is restarted only after a failure (exit status other than 0).
    one_shot: bool = False
    # A start counts as failed when the process exits within this many seconds (then: backoff).
    start_s: int = 3
    # Failed starts in a row before the program is FATAL (reported as failed).
    start_retries: int = 5


def _quote(arg: str) -> str:
    escaped = arg.replace("%", "%%")
    # No comma: it separates the pairs of an environment= line.
    if escaped and all(c.isalnum() or c in "-_./=:@+%" for c in escaped):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_config(state: Path, workdir: Path, programs: list[Program]) -> str:
    lines = [
        "[unix_http_server]",
        f"file={state / 'supervisor.sock'}",
        "chmod=0700",
        "",
        "[supervisord]",
        f"logfile={state / 'logs' / 'supervisord.log'}",
        f"pidfile={state / 'supervisord.pid'}",
        f"directory={workdir}",
        f"childlogdir={state / 'logs'}",
        "nodaemon=false",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{state / 'supervisor.sock'}",
        "",
        f"[eventlistener:{RESTARTS_LISTENER}]",
        "command=" + " ".join(_quote(arg) for arg in [sys.executable, "-m", "atelier.stack.restarts", str(state)]),
        f"directory={workdir}",
        "events=PROCESS_STATE",
        "autostart=true",
        "autorestart=true",
        f"stderr_logfile={state / 'logs' / f'{RESTARTS_LISTENER}.log'}",
        "stderr_logfile_maxbytes=5MB",
        "stderr_logfile_backups=1",
    ]
    for program in programs:
        env = ",".join(f"{key}={_quote(value)}" for key, value in sorted(program.environment.items()))
        lines += [
            "",
            f"[program:{program.name}]",
            "command=" + " ".join(_quote(arg) for arg in program.command),
            f"directory={workdir}",
            # The launcher starts them, tier by tier; supervisord restarts them.
            "autostart=false",
            *(
                ["autorestart=unexpected", "exitcodes=0", "startsecs=0"]
                if program.one_shot
                else ["autorestart=true", f"startsecs={program.start_s}"]
            ),
            f"startretries={program.start_retries}",
            "stopsignal=TERM",
            f"stopwaitsecs={program.stop_wait_s}",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={program.log_file}",
            "stdout_logfile_maxbytes=50MB",
            "stdout_logfile_backups=2",
            f"environment={env}",
        ]
    return "\n".join(lines) + "\n"


# States in which supervisord lets a program's group be removed.
STOPPED_STATES = frozenset({"STOPPED", "EXITED", "FATAL"})


class Supervisor:
    """A handle on the stack's supervisord, started on demand."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.config = state / "supervisord.conf"
        self.socket = state / "supervisor.sock"
        self.pid_file = state / "supervisord.pid"

    def _proxy(self) -> Any:
        transport = SupervisorTransport(None, None, f"unix://{self.socket}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    def is_running(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            return self._proxy().supervisor.getState()["statename"] == "RUNNING"
        except (OSError, xmlrpc.client.Fault):
            return False

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def start_daemon(self, timeout_s: float = 15.0) -> None:
        supervisord = Path(sys.executable).parent / "supervisord"
        subprocess.run([str(supervisord), "-c", str(self.config)], check=True)
        deadline = time.monotonic() + timeout_s
        while not self.is_running():
            if time.monotonic() > deadline:
                raise RuntimeError(f"supervisord did not start; see {self.state / 'logs' / 'supervisord.log'}")
            time.sleep(0.1)

    def reload(self) -> None:
        """Rereads the config; adds new programs, leaves running ones alone. A stopped program that
        changed takes its new config (a running one keeps its old config until it is stopped and the
        config read again: `atelier down`, then `up`); one no longer in the config (a stream worker of
        fewer ATELIER_STREAM_WORKERS) is stopped and dropped."""
        proxy = self._proxy()
        added, changed, removed = proxy.supervisor.reloadConfig()[0]
        for name in removed:
            self.stop(name)
        stopped = {info["name"] for info in proxy.supervisor.getAllProcessInfo() if info["statename"] in STOPPED_STATES}
        for name in [*changed, *removed]:
            if name in stopped:
                proxy.supervisor.removeProcessGroup(name)
        for name in [*added, *(name for name in changed if name in stopped)]:
            proxy.supervisor.addProcessGroup(name)

    def info(self, name: str) -> dict[str, Any]:
        return self._proxy().supervisor.getProcessInfo(name)

    def all_info(self) -> list[dict[str, Any]]:
        return self._proxy().supervisor.getAllProcessInfo()

    def start(self, name: str) -> None:
        self._proxy().supervisor.startProcess(name, False)

    def stop(self, name: str) -> None:
        try:
            self._proxy().supervisor.stopProcess(name, True)
        except xmlrpc.client.Fault as fault:
            if "NOT_RUNNING" not in fault.faultString:
                raise

    def signal(self, name: str, signal_name: str) -> None:
        """Sends a signal (e.g. "STOP", "CONT", "KILL") to one program; for failure tests and operators."""
        self._proxy().supervisor.signalProcess(name, signal_name)

    def shutdown(self, timeout_s: float = 60.0) -> None:
        """Stops every program, then supervisord itself, and waits for it to exit."""
        pid = self.pid()
        try:
            self._proxy().supervisor.shutdown()
        except (OSError, xmlrpc.client.Fault):
            pass
        deadline = time.monotonic() + timeout_s
        while pid is not None and procfs.alive(pid):
            if time.monotonic() > deadline:
                raise RuntimeError(f"supervisord (pid {pid}) did not exit within {timeout_s:.0f}s")
            time.sleep(0.1)
