"""A running mesh: the plan's processes all started at once, each waited on until healthy,
watched and restarted while the run lasts, and stopped in order (the gateway first, so no new
traces start; the backend last, so the spans the others flush on their way out are stored).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from tracemesh.mesh.config_file import read_mesh_file
from tracemesh.mesh.yaml_nodes import read_limited
from tracemesh.runner.health import probe, wait_healthy
from tracemesh.runner.plan import (
    APP,
    BACKEND,
    GATEWAY,
    SIDECAR,
    Plan,
    PlanOptions,
    Probe,
    ProcessSpec,
    declares_collector,
    make_plan,
    write_registry,
)
from tracemesh.runner.state import STATE_FILE, ProcessState, RunState, start_ticks
from tracemesh.runner.supervisor import Backoff, Supervised
from tracemesh.runtime.proxy_options import GATEWAY_SERVICE

log = logging.getLogger("tracemesh.runner")
LOG_TAIL = 2000


class RunnerError(RuntimeError):
    """The mesh could not be brought up; the message says which process and shows its log."""


@dataclass(frozen=True, slots=True)
class RunOptions:
    plan: PlanOptions
    backoff: Backoff = field(default_factory=Backoff)
    wait_timeout: float = 30.0  # for each process to become healthy
    stop_timeout: float = 10.0  # for each process to exit after SIGTERM


class MeshRun:
    def __init__(self, options: RunOptions) -> None:
        """Reads and checks the mesh file (ConfigError naming line and column) and plans the
        run; nothing starts until `start`."""
        self.options = options
        mesh_file = options.plan.mesh_file
        self.mesh = read_mesh_file(mesh_file)
        self.run_dir = options.plan.run_dir
        self._collector_in_file = declares_collector(read_limited(mesh_file))
        self.plan: Plan | None = None
        self.state: RunState | None = None
        self.children: dict[str, Supervised] = {}
        self._lock: IO[bytes] | None = None

    @property
    def gateway(self) -> str | None:
        return self.plan.gateway if self.plan else None

    @property
    def ui(self) -> str | None:
        return self.plan.ui if self.plan else None

    def _save(self) -> None:
        if self.state is not None:
            self.state.save(self.run_dir)

    async def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._lock = _lock(self.run_dir)  # held while the run lasts; children do not inherit it
        (self.run_dir / "logs").mkdir(exist_ok=True)
        self.plan = plan = make_plan(self.mesh, self.options.plan, self._collector_in_file)
        write_registry(plan, self.run_dir)
        self.state = RunState(
            str(self.options.plan.mesh_file.resolve()), os.getpid(), start_ticks(os.getpid()),
            plan.ui, plan.gateway, plan.collector,
        )  # fmt: skip
        try:
            # All at once: the proxies only need the registry file, already written, and no
            # span is made before every process is healthy (their reporters reconnect).
            for group in ([BACKEND, APP, SIDECAR, GATEWAY],):
                specs = [p for p in plan.processes if p.kind in group]
                for step in (self._start, self._healthy):  # every one finishes before a raise
                    results = await asyncio.gather(*map(step, specs), return_exceptions=True)
                    errors = [r for r in results if isinstance(r, BaseException)]
                    if errors:
                        raise errors[0]
        except BaseException:
            await self.stop()
            raise

    async def _start(self, spec: ProcessSpec) -> None:
        assert self.state is not None
        record = ProcessState(spec.name, spec.kind, spec.service, spec.version, dict(spec.ports),
                              asdict(spec.probe))  # fmt: skip
        self.state.processes.append(record)
        log_path = self.run_dir / "logs" / f"{spec.name}.log"
        child = Supervised(spec, record, log_path, self.options.backoff, self._save,
                           restart=spec.kind != BACKEND)  # fmt: skip
        self.children[spec.name] = child
        try:
            await child.start()
        except OSError as exc:
            raise RunnerError(f"{spec.name}: cannot run {spec.argv[0]!r}: {exc}") from None

    async def _healthy(self, spec: ProcessSpec) -> None:
        child = self.children[spec.name]
        waiting = asyncio.ensure_future(wait_healthy(spec.probe, self.options.wait_timeout))
        watched: set[asyncio.Future[Any]] = {waiting}
        if spec.kind != APP:  # an app may crash and be restarted meanwhile; a proxy may not
            watched.add(asyncio.ensure_future(child.exited.wait()))
        done, pending = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if waiting not in done or not waiting.result():
            where = f"{spec.probe.kind} {spec.probe.port}{spec.probe.path}"
            what = (
                "exited while starting"
                if waiting not in done
                else f"did not become healthy ({where}) within {self.options.wait_timeout:g} s"
            )
            raise RunnerError(
                f"{spec.name} {what}; the end of its log ({child.log_path}):\n"
                + _tail(child.log_path)
            )

    async def stop(self) -> None:
        """Stop everything (the gateway first, the backend last) and remove the state file."""
        timeout = self.options.stop_timeout
        for group in ([GATEWAY], [APP, SIDECAR], [BACKEND]):
            children = [c for c in self.children.values() if c.spec.kind in group]
            await asyncio.gather(*(c.stop(timeout) for c in children))
        with contextlib.suppress(FileNotFoundError):
            (self.run_dir / STATE_FILE).unlink()
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    async def run_until_signalled(
        self, after_start: Callable[[], Coroutine[Any, Any, None]]
    ) -> None:
        """Start, run `after_start` until it returns or SIGINT or SIGTERM comes, stop."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            starting = asyncio.create_task(self.start())
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait((starting, stopped), return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():  # a signal while starting: stop what started
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
                return
            starting.result()
            work = asyncio.create_task(after_start())
            await asyncio.wait((work, stopped), return_when=asyncio.FIRST_COMPLETED)
            if work.done():
                work.result()  # done (a demo with --once): stop now
            else:
                work.cancel()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            if self.state is not None:
                print("stopping the mesh...", flush=True)
                await self.stop()
                print("stopped", flush=True)


def _lock(run_dir: Path) -> IO[bytes]:
    """An exclusive lock on the run directory: one run per directory."""
    lock = (run_dir / "lock").open("wb")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        try:
            pid = f"runner pid {RunState.load(run_dir).runner_pid}, "
        except (OSError, ValueError):
            pid = ""
        raise RunnerError(
            f"this mesh is already running ({pid}run dir {run_dir});"
            " stop it with `tracemesh mesh down` first"
        ) from None
    return lock


def _tail(path: Path) -> str:
    try:
        data = path.read_bytes()[-LOG_TAIL:]
    except OSError:
        return "(no log)"
    return data.decode("utf-8", "replace")


async def health_of(state: RunState) -> dict[str, bool]:
    """Each process's probe, all at once."""
    names = [p.name for p in state.processes]
    results = await asyncio.gather(*(probe(Probe(**p.probe)) for p in state.processes))
    return dict(zip(names, results, strict=True))


def render(
    state: RunState, health: dict[str, bool] | None = None, run_dir: Path | None = None
) -> str:
    """The table of what runs where (and, given `health`, whether it answers)."""
    rows = [("NAME", "KIND", "SERVICE", "VERSION", "PID", "STATUS", "RESTARTS", "LISTENS ON")]
    for p in state.processes:
        status = p.status
        if health is not None and status == "running":
            status = "healthy" if health.get(p.name) else "unhealthy"
        where = " ".join(f"{k}={port}" for k, port in p.ports.items())
        rows.append((p.name, p.kind, p.service or "-", p.version or "-", str(p.pid or "-"),
                     status, str(p.restarts), where))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]  # fmt: skip
    lines.append("")
    if state.gateway:
        lines.append(f"gateway:  {state.gateway}")
    if state.ui:
        search = f"?service={GATEWAY_SERVICE}.default" if state.gateway else ""
        lines.append(f"traces:   {state.ui}/search{search}")
    else:
        lines.append(f"spans go to the collector at {state.collector}")
    if run_dir is not None:
        lines.append(f"logs:     {run_dir / 'logs'}")
    return "\n".join(lines)
