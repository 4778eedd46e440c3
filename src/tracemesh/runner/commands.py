"""`tracemesh mesh up|down|status` and `tracemesh demo <name>`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the rest is imported when a mesh command runs, not by every `tracemesh`
    from tracemesh.runner.mesh_run import RunOptions
    from tracemesh.runner.state import RunState

MESH_HELP = """\
Run a whole mesh on this machine from one file: the tracing backend (all-in-one, memory
storage) unless the file's tracing.collector or --collector names one, the ingress gateway,
and every service instance (replicas) with its own sidecar, all on free loopback ports.

Each app gets PORT (where to listen), TRACEMESH_OUTBOUND and HTTP_PROXY (its sidecar's outbound
port: call http://<service>/...), and OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_ENDPOINT,
OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_PROPAGATORS, OTEL_RESOURCE_ATTRIBUTES (service.version from the
`version` label), OTEL_TRACES_SAMPLER(_ARG). ${VAR} in a command or env value is one of these;
${PYTHON} is the interpreter running tracemesh. Commands run in the mesh file's directory.
"""

MESH_EXAMPLES = """\
examples:
  tracemesh mesh up -f mesh.yaml          start, print the table and the UI link; Ctrl-C stops
  tracemesh mesh status                   each process's pid, health and restarts
  tracemesh mesh down                     stop it from another terminal
"""

RUN_DIR_HELP = "the run's state and logs (default: one directory per mesh file under " \
    "$XDG_RUNTIME_DIR or ~/.cache, tracemesh/runs/)"  # fmt: skip


def add_mesh_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mesh = sub.add_parser("mesh", help="run a mesh file locally: up, down, status",
                          description=MESH_HELP, epilog=MESH_EXAMPLES,
                          formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    actions = mesh.add_subparsers(dest="mesh_action", metavar="ACTION", required=True)
    up = actions.add_parser("up", help="start everything and run until Ctrl-C or `mesh down`")
    up.add_argument("-f", "--file", required=True, type=Path, help="the mesh file")
    _run_arguments(up)
    for name, text in (("down", "stop a running mesh"), ("status", "each instance's health")):
        action = actions.add_parser(name, help=text)
        action.add_argument("-f", "--file", type=Path,
                            help="the mesh file it was started from (default: the only one "
                            "running)")  # fmt: skip
        action.add_argument("--run-dir", type=Path, help=RUN_DIR_HELP)
        if name == "status":
            action.add_argument("--json", action="store_true", help="print the state as JSON")
        else:
            text = "seconds to wait for it to stop before killing it"
            action.add_argument("--timeout", type=float, default=30.0, help=text)


def add_demo_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from tracemesh.demos.catalog import DEMOS

    listing = "\n".join(f"  {d.name:9} {d.summary}" for d in DEMOS.values())
    demo = sub.add_parser(
        "demo", help="run a sample application in a local mesh and send it traffic",
        description="Bring up a sample application's mesh (see `tracemesh mesh`), send some "
        "requests through its gateway, print the links to their traces, and keep running "
        f"until Ctrl-C.\n\ndemos:\n{listing}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    demo.add_argument("name", choices=sorted(DEMOS), metavar="NAME", help="which demo")
    demo.add_argument("--once", action="store_true",
                      help="stop after the traffic (spans are flushed first)")  # fmt: skip
    demo.add_argument("--requests", type=int, default=0,
                      help="how many requests to send (default: the demo's own set)")  # fmt: skip
    demo.add_argument("--json", action="store_true",
                      help="end with one JSON line: {label: trace id}")  # fmt: skip
    _run_arguments(demo)


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-dir", type=Path, help=RUN_DIR_HELP)
    parser.add_argument("--collector", default="",
                        help="host:port of an OTLP/gRPC collector: start no backend")  # fmt: skip
    parser.add_argument("--gateway-port", type=int, default=-1,
                        help="gateway port (default: the file's gateway.port if free, else any "
                        "free port; 0: any free port)")  # fmt: skip
    parser.add_argument(
        "--ui-port",
        type=int,
        default=-1,
        help="UI and query API port (default: 16686 if free; 0: any free)",
    )
    parser.add_argument("--restart-backoff", type=float, default=0.5,
                        help="first delay before restarting a crashed process, doubled on each "
                        "quick crash")  # fmt: skip
    parser.add_argument("--restart-max-delay", type=float, default=30.0,
                        help="longest delay between restarts")  # fmt: skip
    parser.add_argument(
        "--max-restarts",
        type=int,
        default=10,
        help="quick crashes in a row before a process is left stopped",
    )
    parser.add_argument("--wait-timeout", type=float, default=30.0,
                        help="seconds each process has to become healthy")  # fmt: skip
    parser.add_argument("--log-level", default="warning",
                        help="log level of the backend and the proxies")  # fmt: skip


def _run_options(args: argparse.Namespace, mesh_file: Path) -> RunOptions:
    from tracemesh.runner.mesh_run import RunOptions
    from tracemesh.runner.plan import PlanOptions
    from tracemesh.runner.state import run_dir_for
    from tracemesh.runner.supervisor import Backoff

    plan = PlanOptions(
        mesh_file=mesh_file, run_dir=args.run_dir or run_dir_for(mesh_file),
        collector=args.collector, gateway_port=args.gateway_port, ui_port=args.ui_port,
        log_level=args.log_level,
    )  # fmt: skip
    backoff = Backoff(initial=args.restart_backoff, maximum=args.restart_max_delay,
                      limit=args.max_restarts)  # fmt: skip
    return RunOptions(plan, backoff, wait_timeout=args.wait_timeout)


def main(args: argparse.Namespace) -> int:
    from tracemesh.mesh.yaml_nodes import ConfigError
    from tracemesh.runner.mesh_run import RunnerError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        if args.command == "demo":
            return _demo(args)
        if args.mesh_action == "up":
            return _up(args)
        if args.mesh_action == "down":
            return _down(args)
        return _status(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (RunnerError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _up(args: argparse.Namespace) -> int:
    from tracemesh.runner.mesh_run import MeshRun, render

    run = MeshRun(_run_options(args, args.file))

    async def announce() -> None:
        assert run.state is not None
        print(render(run.state, run_dir=run.run_dir), flush=True)
        print("\nCtrl-C (or `tracemesh mesh down`) stops everything.", flush=True)
        await asyncio.Event().wait()

    asyncio.run(run.run_until_signalled(announce))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from tracemesh.demos import otel
    from tracemesh.demos.catalog import DEFAULT_REQUESTS, DEMOS
    from tracemesh.runner.mesh_run import MeshRun, render

    demo = DEMOS[args.name]
    if demo.needs_sdk and not otel.available():
        print(f"note: {otel.INSTALL_HINT}; the demo runs without its instrumented spans",
              file=sys.stderr)  # fmt: skip
    run = MeshRun(_run_options(args, demo.mesh_file))
    requests = args.requests or DEFAULT_REQUESTS[demo.name]
    sent: list[tuple[str, str]] = []

    async def traffic() -> None:
        assert run.state is not None and run.gateway is not None
        print(render(run.state, run_dir=run.run_dir), flush=True)
        print(f"\nsending {requests} request(s) through the gateway:", flush=True)
        sent.extend(await asyncio.to_thread(demo.traffic, run.gateway, requests))
        if run.ui:
            await asyncio.to_thread(_wait_stored, run.ui, [t for _, t in sent if t])
        print("\ntraces:", flush=True)
        width = max(len(label) for label, _ in sent)
        for label, trace_id in sent:
            where = f"{run.ui}/trace/{trace_id}" if run.ui else f"trace {trace_id}"
            print(f"  {label.ljust(width)}  {where}", flush=True)
        print("\ntry it yourself:", flush=True)
        for line in demo.try_it:
            print("  " + line.format(gateway=run.gateway), flush=True)
        if args.json:
            print(json.dumps(dict(sent)), flush=True)
        if not args.once:
            print("\nCtrl-C stops the demo.", flush=True)
            await asyncio.Event().wait()

    asyncio.run(run.run_until_signalled(traffic))
    return 0


def _wait_stored(ui: str, trace_ids: list[str], timeout: float = 15.0) -> None:
    """Until the backend has every trace (spans are batched on their way), or `timeout`."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    pending = list(trace_ids)
    while pending and time.monotonic() < deadline:
        try:
            with opener.open(f"{ui}/api/traces/{pending[0]}", timeout=5) as response:
                if response.status == 200:
                    pending.pop(0)
                    continue
        except OSError:
            pass
        time.sleep(0.2)


def _find_run(args: argparse.Namespace) -> Path:
    from tracemesh.runner.mesh_run import RunnerError
    from tracemesh.runner.state import RunState, live_runs, run_dir_for

    if args.run_dir:
        return Path(args.run_dir)
    if args.file:
        return run_dir_for(args.file)
    runs = live_runs()
    if len(runs) == 1:
        return runs[0]
    if not runs:
        raise RunnerError("no mesh is running")
    names = "\n".join(f"  {RunState.load(r).mesh_file}  (--run-dir {r})" for r in runs)
    raise RunnerError(f"{len(runs)} meshes are running; say which with -f or --run-dir:\n{names}")


def _load(run_dir: Path) -> RunState:
    from tracemesh.runner.mesh_run import RunnerError
    from tracemesh.runner.state import RunState

    try:
        return RunState.load(run_dir)
    except FileNotFoundError:
        raise RunnerError(f"no mesh is running from {run_dir}") from None
    except (OSError, ValueError) as exc:
        raise RunnerError(
            f"the run state in {run_dir} is unreadable ({exc!r:.200}); "
            "remove the directory if no mesh runs from it"
        ) from None


def _status(args: argparse.Namespace) -> int:
    from tracemesh.runner.mesh_run import health_of, render
    from tracemesh.runner.state import is_alive

    run_dir = _find_run(args)
    state = _load(run_dir)
    if not is_alive(state.runner_pid, state.runner_started):
        print(f"the runner (pid {state.runner_pid}) is gone; `tracemesh mesh down` cleans up",
              file=sys.stderr)  # fmt: skip
        return 3
    health = asyncio.run(health_of(state))
    if args.json:
        data = {
            "mesh_file": state.mesh_file,
            "runner_pid": state.runner_pid,
            "ui": state.ui,
            "gateway": state.gateway,
            "processes": [
                {
                    "name": p.name,
                    "kind": p.kind,
                    "service": p.service,
                    "version": p.version,
                    "pid": p.pid,
                    "status": p.status,
                    "restarts": p.restarts,
                    "healthy": health[p.name],
                    "ports": p.ports,
                }
                for p in state.processes
            ],
        }
        print(json.dumps(data, indent=1))  # fmt: skip
    else:
        print(f"mesh {state.mesh_file} (runner pid {state.runner_pid})")
        print(render(state, health, run_dir))
    return 0 if all(health.values()) else 1


def _down(args: argparse.Namespace) -> int:
    from tracemesh.runner.state import STATE_FILE, is_alive

    run_dir = _find_run(args)
    state = _load(run_dir)
    if is_alive(state.runner_pid, state.runner_started):
        os.kill(state.runner_pid, signal.SIGTERM)
        print(f"stopping the mesh of {state.mesh_file} (runner pid {state.runner_pid})...")
        deadline = time.monotonic() + args.timeout
        while is_alive(state.runner_pid, state.runner_started) and time.monotonic() < deadline:
            time.sleep(0.1)
        if is_alive(state.runner_pid, state.runner_started):
            print("the runner did not stop in time; killing it", file=sys.stderr)
            os.kill(state.runner_pid, signal.SIGKILL)
    _kill_leftovers(state)
    (run_dir / STATE_FILE).unlink(missing_ok=True)
    print("stopped")
    return 0


def _kill_leftovers(state: RunState) -> None:
    """Process groups of a runner that died without stopping them (SIGKILL, a crash)."""
    from tracemesh.runner.state import group_alive

    groups = [p.pid for p in state.processes if group_alive(p.pid)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(group_alive(g) for g in groups):
            time.sleep(0.1)
        groups = [g for g in groups if group_alive(g)]
        if not groups:
            return
