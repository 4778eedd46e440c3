"""The run directory of a running mesh: `state.json` (the runner's pid, every process's pid,
process group, ports and status), the generated registry, and one log file per process.

`tracemesh mesh down` and `mesh status` in another terminal find the run from the mesh file's
path (each file has its own directory under the runs root) or from `--run-dir`.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"


def runs_root() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or os.path.join(Path.home(), ".cache")
    return Path(base) / "tracemesh" / "runs"


def run_dir_for(mesh_file: Path) -> Path:
    """A directory per mesh file, stable across runs: `<stem>-<hash of its absolute path>`."""
    resolved = str(mesh_file.resolve())
    digest = hashlib.sha256(resolved.encode()).hexdigest()[:10]
    return runs_root() / f"{mesh_file.stem}-{digest}"


@dataclass
class ProcessState:
    name: str
    kind: str
    service: str
    version: str
    ports: dict[str, int]
    probe: dict[str, Any]  # Probe as a dict
    pid: int = 0
    started: float = 0.0  # the process's start time, ticks since boot (tells a reused pid)
    status: str = "starting"  # starting, running, backoff, failed, stopped
    restarts: int = 0
    log: str = ""


@dataclass
class RunState:
    mesh_file: str
    runner_pid: int
    runner_started: float
    ui: str | None
    gateway: str | None
    collector: str
    processes: list[ProcessState] = field(default_factory=list)
    updated: float = field(default_factory=time.time)

    def save(self, run_dir: Path) -> None:
        self.updated = time.time()
        path = run_dir / STATE_FILE
        tmp = path.with_name(STATE_FILE + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        os.replace(tmp, path)

    @classmethod
    def load(cls, run_dir: Path) -> RunState:
        """OSError when unreadable, ValueError when it is not a run state."""
        data = json.loads((run_dir / STATE_FILE).read_bytes())
        try:
            processes = [ProcessState(**p) for p in data.pop("processes")]
            state = cls(**data, processes=processes)
        except (TypeError, KeyError, AttributeError) as exc:
            raise ValueError(f"not a run state: {exc}") from None
        # What `down` would signal: plausible pids (never 0 or 1: "everyone" and init).
        for pid, started in [(state.runner_pid, state.runner_started),
                             *((p.pid, p.started) for p in state.processes)]:  # fmt: skip
            if not _pid(pid) or not isinstance(started, int | float) or isinstance(started, bool):
                raise ValueError(f"not a run state: pid {pid!r}")
        return state


def _pid(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 < value < 1 << 22


def start_ticks(pid: int) -> float:
    """When `pid` started (clock ticks since boot, /proc/<pid>/stat field 22); 0 if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    return float(stat.rsplit(")", 1)[1].split()[19])


def is_alive(pid: int, started: float) -> bool:
    """`pid` runs and is the same process as recorded (not a reused pid, not a zombie)."""
    if pid <= 0:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return False
    return not started or float(fields[19]) == started


def live_runs() -> list[Path]:
    """Run directories whose runner is still alive."""
    root = runs_root()
    found = []
    for path in sorted(root.glob("*/" + STATE_FILE)) if root.is_dir() else []:
        try:
            state = RunState.load(path.parent)
        except (OSError, ValueError):
            continue
        if is_alive(state.runner_pid, state.runner_started):
            found.append(path.parent)
    return found


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group `pgid`, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def group_alive(pgid: int) -> bool:
    """Some process of group `pgid` still runs (each child of the runner leads its own)."""
    return pgid > 0 and bool(group_members(pgid))
