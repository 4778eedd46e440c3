"""The run state file round-trips, and whatever else is found in its place (a crash mid-write,
another program's file, hostile JSON) is refused with ValueError, never trusted with pids."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tracemesh.runner.state import STATE_FILE, ProcessState, RunState

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=4),
    max_leaves=12,
)  # fmt: skip
KEYS = ["mesh_file", "runner_pid", "runner_started", "ui", "gateway", "collector", "processes"]


def test_round_trip(tmp_path: Path) -> None:
    state = RunState("/m.yaml", 10, 5.0, "http://ui", None, "127.0.0.1:4317", [
        ProcessState("a", "app", "svc", "v1", {"app": 1}, {"kind": "tcp", "port": 1, "path": ""},
                     pid=11, started=7.0, restarts=2)])  # fmt: skip
    state.save(tmp_path)
    assert RunState.load(tmp_path) == state


DIRECTORY = Path(tempfile.mkdtemp(prefix="tracemesh-state-"))


@settings(max_examples=100, deadline=None)
@given(st.one_of(JSON, st.fixed_dictionaries({k: JSON for k in KEYS})), st.binary(max_size=40))
def test_anything_else_is_a_value_error(value: object, raw: bytes) -> None:
    directory = DIRECTORY
    for data in (json.dumps(value).encode(), raw):
        (directory / STATE_FILE).write_bytes(data)
        try:
            state = RunState.load(directory)
        except ValueError:
            continue
        assert all(
            type(p) is int and p > 1 for p in (state.runner_pid, *(p.pid for p in state.processes))
        )
