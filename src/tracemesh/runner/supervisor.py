"""One supervised child process: started in its own process group (so stopping it stops whatever
it started too), its output in a log file, restarted with exponential backoff when it exits on
its own, and given up on after too many quick failures.

Children also get SIGTERM when the runner itself dies (Linux `PR_SET_PDEATHSIG`), so even a
runner killed with SIGKILL leaves no mesh behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tracemesh.runner.plan import ProcessSpec
from tracemesh.runner.state import ProcessState, start_ticks

log = logging.getLogger("tracemesh.runner")

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)  # the running program's symbols include libc's
_prctl = getattr(_libc, "prctl", None)  # Linux only


def _child_setup() -> None:  # runs in the child between fork and exec: keep it tiny
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays `initial`, 2x, 4x... up to `maximum` between restarts; a run of `stable` seconds
    resets the count; `limit` consecutive quick failures and the process is left stopped."""

    initial: float = 0.5
    maximum: float = 30.0
    stable: float = 10.0
    limit: int = 10

    def delay(self, failures: int) -> float:
        return float(min(self.initial * 2 ** max(failures - 1, 0), self.maximum))


class Supervised:
    def __init__(
        self,
        spec: ProcessSpec,
        state: ProcessState,
        log_path: Path,
        backoff: Backoff,
        changed: Callable[[], None],
        restart: bool = True,
    ) -> None:
        self.spec = spec
        self.state = state
        self.log_path = log_path
        self.backoff = backoff
        self.restart = restart
        self._changed = changed
        self._proc: asyncio.subprocess.Process | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.exited = asyncio.Event()  # the process has exited at least once
        state.log = str(log_path)

    @property
    def pid(self) -> int:
        return self._proc.pid if self._proc is not None else 0

    async def start(self) -> None:
        """Start the process now (so a bad command fails here), then watch it."""
        await self._spawn()
        self._task = asyncio.create_task(self._watch(), name=f"supervise {self.spec.name}")

    async def _spawn(self) -> None:
        env = {**os.environ, **self.spec.env}
        with self.log_path.open("ab") as out:
            out.write(f"--- {time.strftime('%H:%M:%S')} start: {' '.join(self.spec.argv)}\n"
                      .encode())  # fmt: skip
            out.flush()
            self._proc = await asyncio.create_subprocess_exec(
                *self.spec.argv, stdin=asyncio.subprocess.DEVNULL, stdout=out,
                stderr=asyncio.subprocess.STDOUT, cwd=self.spec.cwd, env=env,
                start_new_session=True, preexec_fn=_child_setup,
            )  # fmt: skip
        self.state.pid = self._proc.pid
        self.state.started = start_ticks(self._proc.pid)
        self.state.status = "running"
        self._changed()

    async def _watch(self) -> None:
        failures = 0
        while True:
            assert self._proc is not None
            began = time.monotonic()
            code = await self._proc.wait()
            self._kill_group(signal.SIGKILL)  # whatever it left behind
            self.exited.set()
            if self._stopping.is_set():
                return
            failures = 1 if time.monotonic() - began >= self.backoff.stable else failures + 1
            log.warning("%s exited with %s", self.spec.name, code)
            if not self.restart or failures > self.backoff.limit:
                self.state.status = "failed"
                self._changed()
                log.error("%s: not restarted again (%d quick failures); its log: %s",
                          self.spec.name, failures, self.log_path)  # fmt: skip
                return
            self.state.status = "backoff"
            self._changed()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.backoff.delay(failures))
            if self._stopping.is_set():
                return
            self.state.restarts += 1
            try:
                await self._spawn()
            except OSError as exc:
                log.error("%s cannot be restarted: %s", self.spec.name, exc)
                self.state.status = "failed"
                self._changed()
                return

    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def _kill_group(self, sig: int) -> None:
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    def signal_stop(self) -> None:
        """SIGTERM to the whole group; no restart after."""
        self._stopping.set()
        if self.running():
            self._kill_group(signal.SIGTERM)

    async def stop(self, timeout: float) -> None:
        """SIGTERM, then SIGKILL after `timeout`; returns once the group is gone."""
        self.signal_stop()
        if self._proc is not None and self._proc.returncode is None:
            try:
                await asyncio.wait_for(self._proc.wait(), timeout)
            except TimeoutError:
                log.warning("%s did not stop in %.0f s; killing it", self.spec.name, timeout)
                self._kill_group(signal.SIGKILL)
                await self._proc.wait()
        self._kill_group(signal.SIGKILL)
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.state.status = "stopped"
        self._changed()
