"""Restarts and last exits of the stack's programs, recorded by a supervisord event listener.

supervisord runs `python -m atelier.stack.restarts STATE_DIR` as an [eventlistener]
subscribed to PROCESS_STATE events (supervisor.childutils speaks the protocol). Each
exit of a program (EXITED, or BACKOFF: it exited before its start counted) is
recorded with its time and how it ended; each start supervisord makes on its own
after such an exit is a restart. The record is a small JSON file in the state
folder, rewritten atomically after every change, that `atelier status` reads. A
new supervisord (`atelier up` after `down`) starts a new record.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from supervisor import childutils

from atelier.stack.logfiles import tail

RECORD_FILE = "restarts.json"
# A start from one of these states is supervisord's own doing (autorestart, backoff), not a command.
_AUTOMATIC_FROM = {"EXITED", "BACKOFF"}


@dataclass
class Exit:
    at: float  # time.time()
    how: str  # supervisord's words: "terminated by SIGKILL", "exit status 1"
    expected: bool


@dataclass
class Record:
    restarts: int = 0
    last_exit: Exit | None = None


@dataclass
class Restarts:
    programs: dict[str, Record] = field(default_factory=dict)

    def on_event(self, event: str, headers: dict[str, str], how: str) -> bool:
        """Applies one PROCESS_STATE event; True when the record changed."""
        name = headers["processname"]
        record = self.programs.setdefault(name, Record())
        if event == "PROCESS_STATE_STARTING" and headers.get("from_state") in _AUTOMATIC_FROM:
            record.restarts += 1
            return True
        if event in ("PROCESS_STATE_EXITED", "PROCESS_STATE_BACKOFF"):
            record.last_exit = Exit(time.time(), how, headers.get("expected") == "1")
            return True
        return False

    def to_json(self) -> str:
        return json.dumps({name: asdict(record) for name, record in self.programs.items()}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Restarts:
        programs = {}
        for name, value in json.loads(text).items():
            last = value.get("last_exit")
            programs[name] = Record(value.get("restarts", 0), Exit(**last) if last else None)
        return cls(programs)


def load(state: Path) -> Restarts:
    """The record of the running supervisord; empty when there is none (or it is unreadable)."""
    try:
        return Restarts.from_json((state / RECORD_FILE).read_text())
    except (OSError, ValueError, TypeError):
        return Restarts()


def describe_exit(last: Exit | None, now: float | None = None) -> str:
    """A short column: "SIGKILL 12s ago", "exit 1 3m ago", "-" when it never exited."""
    if last is None:
        return "-"
    how = last.how.removeprefix("terminated by ").replace("exit status ", "exit ")
    ago = max(0, int((now if now is not None else time.time()) - last.at))
    when = f"{ago}s" if ago < 120 else f"{ago // 60}m" if ago < 7200 else f"{ago // 3600}h"
    return f"{how} {when} ago"


def exit_words(supervisord_log: Path, name: str) -> str:
    """How `name` last ended, in supervisord's words from its log ("terminated by SIGKILL")."""
    pattern = re.compile(rf"exited: {re.escape(name)} \((.+?); (?:not )?expected\)")
    for line in reversed(tail(supervisord_log, 50)):
        if match := pattern.search(line):
            return match.group(1)
    return "exited"


def _write(path: Path, restarts: Restarts) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(restarts.to_json())
    os.replace(temporary, path)


def listen(state: Path) -> None:
    """The event listener's loop (stdin/stdout belong to supervisord's protocol)."""
    path = state / RECORD_FILE
    supervisord_log = state / "logs" / "supervisord.log"
    restarts = Restarts()
    _write(path, restarts)
    own = os.environ.get("SUPERVISOR_PROCESS_NAME")
    while True:
        headers, payload = childutils.listener.wait(sys.stdin, sys.stdout)
        event = headers["eventname"]
        fields, _ = childutils.eventdata(payload + "\n")
        if fields.get("processname") != own:
            how = exit_words(supervisord_log, fields["processname"]) if event.endswith(("EXITED", "BACKOFF")) else ""
            try:
                if restarts.on_event(event, fields, how):
                    _write(path, restarts)
            except OSError as error:
                print(f"cannot write {path}: {error}", file=sys.stderr, flush=True)
        childutils.listener.ok(sys.stdout)


if __name__ == "__main__":
    listen(Path(sys.argv[1]))
