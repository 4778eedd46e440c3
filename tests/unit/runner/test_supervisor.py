"""The supervisor on real (tiny) processes: restarts with backoff until the limit, then `failed`;
a process that keeps running is left alone; stopping reaps it."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from tracemesh.runner.plan import APP, Probe, ProcessSpec
from tracemesh.runner.state import ProcessState, group_alive
from tracemesh.runner.supervisor import Backoff, Supervised


def supervised(tmp_path: Path, code: str, backoff: Backoff) -> Supervised:
    spec = ProcessSpec("p", APP, (sys.executable, "-c", code), {}, str(tmp_path), Probe("tcp", 1))
    state = ProcessState("p", APP, "s", "", {}, {})
    return Supervised(spec, state, tmp_path / "p.log", backoff, lambda: None)


def test_crashing_process_is_restarted_with_backoff_then_left_failed(tmp_path: Path) -> None:
    async def main() -> tuple[Supervised, float]:
        child = supervised(tmp_path, "print('up'); raise SystemExit(4)",
                           Backoff(initial=0.05, maximum=0.1, limit=3))  # fmt: skip
        started = time.monotonic()
        await child.start()
        while child.state.status != "failed":
            await asyncio.sleep(0.02)
        elapsed = time.monotonic() - started
        await child.stop(1)
        return child, elapsed

    child, elapsed = asyncio.run(main())
    assert child.state.restarts == 3  # 4 runs: the first and 3 restarts
    assert elapsed >= 0.05 + 0.1 + 0.1  # the delays doubled and were capped
    assert child.log_path.read_text().count("up\n") == 4
    assert child.state.status == "stopped"


def test_stop_ends_a_running_process_and_its_group(tmp_path: Path) -> None:
    async def main() -> Supervised:
        child = supervised(tmp_path, "import time; time.sleep(60)", Backoff())
        await child.start()
        assert child.running() and group_alive(child.pid)
        await child.stop(5)
        return child

    child = asyncio.run(main())
    assert not child.running() and not group_alive(child.pid)
    assert child.state.restarts == 0 and child.state.status == "stopped"
