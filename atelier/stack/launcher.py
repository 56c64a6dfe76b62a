"""`atelier up`, `down` and `status`: the local stack under supervisord."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from atelier.edge.dev_key import dev_key_path, ensure_dev_key
from atelier.edge.keys import KeyFile
from atelier.edge.settings import KeyFileSettings
from atelier.serving.settings import ROOT, Endpoints, Tracing, state_dir
from atelier.stack import StackError, envoy, restarts
from atelier.stack.components import Component, build_components
from atelier.stack.logfiles import tail
from atelier.stack.models import features_off, model_repository, seed_first_versions, triton_models
from atelier.stack.readiness import StillStarting, port_in_use
from atelier.stack.supervisor import RESTARTS_LISTENER, Program, Supervisor, render_config
from atelier.stack.trace_receiver import local_tracing_environment

# Up, or on its way up: supervisord's BACKOFF waits before it tries a failed start again.
RUNNING_STATES = {"RUNNING", "STARTING", "BACKOFF"}
# It gave up: the program failed to start `start_retries` times in a row.
FAILED_STATE = "FATAL"
PROGRESS_EVERY_S = 5.0


@dataclass
class Stack:
    endpoints: Endpoints
    state: Path
    say: Callable[[str], None]

    @classmethod
    def from_env(cls, say: Callable[[str], None] = print) -> Stack:
        return cls(Endpoints.from_env(), state_dir(), say)

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def supervisor(self) -> Supervisor:
        return Supervisor(self.state)

    def components(self) -> list[Component]:
        return build_components(self.endpoints, self.state)

    def log_file(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    # -- up ---------------------------------------------------------------

    def _write_configs(self, components: list[Component]) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        # Tracing on, to the stack's own receiver, unless the user says otherwise.
        environment = local_tracing_environment(self.endpoints) | {
            key: value
            for key, value in os.environ.items()
            if key.startswith(("ATELIER_", "OTEL_", "STREAM_", "SEARCH_", "FEATURES_", "RANKER_"))
        }
        config_path = self.state / "envoy.yaml"
        config_path.write_text(envoy.render_config(self.endpoints, tracing=Tracing.from_env(environment)))
        envoy.validate(config_path)
        environment |= {
            "ATELIER_STATE_DIR": str(self.state),
            "PYTHONUNBUFFERED": "1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        programs = [
            Program(
                c.name,
                c.command,
                environment | c.environment,
                self.log_file(c.name),
                c.stop_wait_s,
                one_shot=c.one_shot,
                start_s=c.start_s,
            )
            for c in components
        ]
        self.supervisor.config.write_text(render_config(self.state, ROOT, programs))

    def up(self) -> None:
        started = time.monotonic()
        repository = model_repository(self.state)
        seed_first_versions(repository, self.say)
        repository.refresh()
        if ensure_dev_key(KeyFile(KeyFileSettings.from_env().path(self.state)), self.state):
            self.say(f"  created the local API key `dev`: {dev_key_path(self.state)}")
        components = self.components()
        for component in components:
            if component.prepare is not None:
                component.prepare()
        self._write_configs(components)
        for reason in features_off(triton_models(repository)):
            self.say(f"  {reason}")
        supervisor = self.supervisor
        if supervisor.is_running():
            supervisor.reload()
            # A running Prometheus rereads its config on SIGHUP (the stream workers' targets may have changed).
            if "prometheus" in {c.name for c in components} and supervisor.info("prometheus")["statename"] == "RUNNING":
                supervisor.signal("prometheus", "HUP")
        else:
            supervisor.start_daemon()
        try:
            # What is running is left alone; what is stopped, FATAL or exited is started again.
            for tier in sorted({c.tier for c in components}):
                self._start_tier([c for c in components if c.tier == tier])
        except StackError:
            self.say("stopping what was started")
            self.down(quiet=True)
            raise
        self.say(
            f"stack is up in {time.monotonic() - started:.1f}s: "
            f"REST and gRPC at http://{self.endpoints.address(self.endpoints.envoy_port)}"
        )

    def _start_tier(self, tier: list[Component]) -> None:
        supervisor = self.supervisor
        to_start = []
        for component in tier:
            if supervisor.info(component.name)["statename"] in RUNNING_STATES:
                continue
            taken = [port for port in component.ports if port_in_use(self.endpoints.host, port)]
            if taken:
                raise StackError(
                    f"{component.name}: port {', '.join(map(str, taken))} on {self.endpoints.host} "
                    "is already in use by another process"
                )
            to_start.append(component)
        for component in to_start:
            self.say(f"  starting {component.name}")
            supervisor.start(component.name)
        with ThreadPoolExecutor(max_workers=len(tier)) as pool:
            failures = [e for e in pool.map(self._await_ready, tier) if e is not None]
        if failures:
            raise StackError("\n".join(failures))

    def _await_ready(self, component: Component) -> str | None:
        started = time.monotonic()
        deadline = started + component.ready_timeout_s
        last_error: Exception | None = None
        progress_said = 0.0
        while time.monotonic() < deadline:
            state = self.supervisor.info(component.name)
            if component.one_shot and state["statename"] == "EXITED" and state.get("exitstatus") == 0:
                self.say(f"  {component.name} done ({time.monotonic() - started:.1f}s)")
                return None
            # EXITED is a moment: supervisord starts it again (and a one-shot job's clean exit is above).
            if state["statename"] not in RUNNING_STATES | {"EXITED"}:
                return self._failure(component, f"{state['statename']} ({state['description']})")
            try:
                component.check()
            except StillStarting as error:
                if time.monotonic() - progress_said >= PROGRESS_EVERY_S:
                    self.say(f"  {component.name} {error}")
                    progress_said = time.monotonic()
                # Progress restarts the clock: only a component that stops moving runs out of time.
                deadline = time.monotonic() + component.ready_timeout_s
                last_error = error
            except Exception as error:  # noqa: BLE001 (any failure means not ready yet)
                last_error = error
            else:
                self.say(f"  {component.name} ready ({time.monotonic() - started:.1f}s)")
                return None
            time.sleep(0.25)
        return self._failure(component, f"not ready after {component.ready_timeout_s:.0f}s ({last_error})")

    def _failure(self, component: Component, why: str) -> str:
        log = self.log_file(component.name)
        last_lines = "".join(f"    | {line}" for line in tail(log, 15))
        return f"{component.name} did not come up: {why}\n  log: {log}\n" + last_lines

    # -- down -------------------------------------------------------------

    def down(self, quiet: bool = False) -> None:
        supervisor = self.supervisor
        if not supervisor.is_running():
            if not quiet:
                self.say("nothing is running")
            return
        # What supervisord runs, which may differ from what these settings would start (`up` ran
        # with other switches, such as ATELIER_FIRST_RUN_TRAINING).
        running = {info["name"] for info in supervisor.all_info() if info["statename"] in RUNNING_STATES}
        components = [c for c in self.components() if c.name in running]
        strangers = sorted(running - {c.name for c in components} - {RESTARTS_LISTENER})
        for name in strangers:
            supervisor.stop(name)
        for tier in sorted({c.tier for c in components}, reverse=True):
            names = [c.name for c in components if c.tier == tier]
            with ThreadPoolExecutor(max_workers=len(names)) as pool:
                list(pool.map(supervisor.stop, names))
        supervisor.shutdown()
        # Only ports of what was running: one taken by a stranger is not ours to free.
        busy = self._wait_ports_free(components, timeout_s=10)
        if busy:
            raise StackError(f"ports still in use after down: {', '.join(busy)}")
        if not quiet:
            self.say("stack is down")

    def _wait_ports_free(self, components: list[Component], timeout_s: float) -> list[str]:
        deadline = time.monotonic() + timeout_s
        while True:
            busy = [
                f"{c.name}:{port}" for c in components for port in c.ports if port_in_use(self.endpoints.host, port)
            ]
            if not busy or time.monotonic() > deadline:
                return busy
            time.sleep(0.2)

    # -- status -----------------------------------------------------------

    def status(self) -> list[dict[str, str]]:
        """One row per component: supervisord's state, restarts, last exit, readiness, consumer lag;
        a failed (FATAL) one carries the end of its log under "tail"."""
        supervisor = self.supervisor
        running = supervisor.is_running()
        record = restarts.load(self.state) if running else restarts.Restarts()
        infos = {info["name"]: info for info in supervisor.all_info()} if running else {}
        rows = []
        for component in self.components():
            info = infos.get(component.name)
            # Not in the running supervisord's config: added since `atelier up` (run it again).
            state = info["statename"] if info else "STOPPED"
            ready = "-"
            if component.one_shot and state == "EXITED" and info and info.get("exitstatus") == 0:
                ready = "ready"  # its work is done
            elif state == FAILED_STATE:
                ready = "failed"
            elif state in ("RUNNING", "STARTING"):  # STARTING: up, but not yet `startsecs` long
                try:
                    component.check()
                    ready = "ready"
                except Exception as error:  # noqa: BLE001
                    ready = f"not ready: {error}"[:80]
            programme = record.programs.get(component.name, restarts.Record())
            row = {
                "component": component.name,
                "state": state,
                "pid": str(info["pid"]) if info and info["pid"] else "-",
                "ports": ",".join(map(str, component.ports[:3])) + ("..." if len(component.ports) > 3 else ""),
                "restarts": str(programme.restarts),
                "last exit": restarts.describe_exit(programme.last_exit),
                "ready": ready,
                "lag": _lag(component) if state == "RUNNING" else "-",
                "log": str(self.log_file(component.name)),
            }
            if state == FAILED_STATE:
                row["tail"] = "".join(tail(self.log_file(component.name), 10))
            rows.append(row)
        return rows


def _lag(component: Component) -> str:
    """A stream worker's consumer lag per topic ("clicks=0"); "-" for the others or when unknown."""
    if component.lag is None:
        return "-"
    try:
        lags = component.lag()
    except Exception:  # noqa: BLE001 (a worker that is not ready has no figures)
        return "?"
    return ",".join(f"{topic}={lag}" for topic, lag in sorted(lags.items())) or "-"
