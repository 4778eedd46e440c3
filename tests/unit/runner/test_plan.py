"""What `tracemesh mesh up` plans to start, from a mesh file: processes, ports, each app's
environment and each proxy's command line; nothing is started."""

from __future__ import annotations

import sys
from pathlib import Path

from tracemesh.demos.catalog import DEMOS
from tracemesh.mesh.config_file import load_mesh, read_mesh_file
from tracemesh.runner.plan import (
    APP,
    BACKEND,
    GATEWAY,
    SIDECAR,
    PlanOptions,
    _ephemeral_start,
    declares_collector,
    make_plan,
    otel_propagators,
)
from tracemesh.runner.supervisor import Backoff


def options(tmp_path: Path, mesh_file: Path, **kw: object) -> PlanOptions:
    return PlanOptions(mesh_file=mesh_file, run_dir=tmp_path, gateway_port=0, ui_port=0,
                       **kw)  # type: ignore[arg-type]  # fmt: skip


def flag(argv: tuple[str, ...], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_hello_plan_processes_ports_environment(tmp_path: Path) -> None:
    mesh_file = DEMOS["hello"].mesh_file
    plan = make_plan(read_mesh_file(mesh_file), options(tmp_path, mesh_file), False)
    names = [p.name for p in plan.processes]
    assert names == ["backend", "hello-v1-0", "hello-v1-0.sidecar", "formatter-v1-0",
                     "formatter-v1-0.sidecar", "formatter-v2-0", "formatter-v2-0.sidecar",
                     "gateway"]  # fmt: skip
    ports = [port for p in plan.processes for port in p.ports.values()]
    assert len(ports) == len(set(ports))  # no port handed out twice
    # below the ephemeral range, where no outgoing connection takes one meanwhile
    assert all(20000 <= port < _ephemeral_start() for port in ports)
    backend = plan.of_kind(BACKEND)[0]
    assert plan.collector == f"127.0.0.1:{backend.ports['otlp-grpc']}"
    assert plan.ui == f"http://127.0.0.1:{backend.ports['ui']}"
    v2 = next(p for p in plan.processes if p.name == "formatter-v2-0")
    v2_sidecar = next(p for p in plan.processes if p.name == "formatter-v2-0.sidecar")
    env = v2.env
    assert v2.argv == (sys.executable, "-m", "tracemesh.demos.hello.app", "formatter")
    assert env["PORT"] == str(v2.ports["app"]) == flag(v2_sidecar.argv, "--app-port")
    outbound = f"http://127.0.0.1:{v2_sidecar.ports['outbound']}"
    assert env["TRACEMESH_OUTBOUND"] == env["HTTP_PROXY"] == outbound
    assert "127.0.0.1" in env["NO_PROXY"].split(",")  # the OTLP exporter goes direct
    assert env["OTEL_SERVICE_NAME"] == "formatter"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://127.0.0.1:{backend.ports['otlp-http']}"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert env["OTEL_PROPAGATORS"] == "tracecontext,baggage"
    resource = dict(item.split("=") for item in env["OTEL_RESOURCE_ATTRIBUTES"].split(","))
    assert resource == {"service.version": "v2", "service.instance.id": "formatter-v2-0",
                        "service.namespace": "default"}  # fmt: skip
    assert env["PROFESSOR"] == "true"  # the workload's own env
    assert flag(v2_sidecar.argv, "--service") == "formatter"
    assert flag(v2_sidecar.argv, "--label") == "version=v2"
    assert flag(v2_sidecar.argv, "--service-port") == "8080"
    assert flag(v2_sidecar.argv, "--collector") == plan.collector
    assert plan.registry["formatter"] == [
        {"address": f"127.0.0.1:{p.ports['inbound']}", "labels": {"version": v}}
        for v, p in (("v1", plan.processes[4]), ("v2", v2_sidecar))
    ]
    gateway = plan.of_kind(GATEWAY)[0]
    assert plan.gateway == f"http://127.0.0.1:{flag(gateway.argv, '--port')}"


def test_collector_in_file_or_flag_means_no_backend(tmp_path: Path) -> None:
    text = """
services:
  - {name: web, command: [web], port: 80, replicas: 3}
  - {name: idle, command: [idle], port: 81, replicas: 0}
tracing: {collector: "10.0.0.5:4317", propagation: [b3, baggage]}
"""
    mesh_file = tmp_path / "mesh.yaml"
    mesh_file.write_text(text)
    assert declares_collector(text) and not declares_collector("tracing: {sampling: 5}\n")
    plan = make_plan(load_mesh(text), options(tmp_path, mesh_file), declares_collector(text))
    assert plan.of_kind(BACKEND) == [] and plan.ui is None and plan.gateway is None
    assert plan.collector == "10.0.0.5:4317"
    assert [p.name for p in plan.of_kind(APP)] == ["web-0", "web-1", "web-2"]
    assert len(plan.of_kind(SIDECAR)) == 3
    env = plan.of_kind(APP)[0].env
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://10.0.0.5:4317"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc"
    assert env["OTEL_PROPAGATORS"] == "b3multi,baggage"
    flagged = make_plan(load_mesh(text), options(tmp_path, mesh_file, collector="h:1"), True)
    assert flagged.collector == "h:1"


def test_variables_expand_in_commands_and_env(tmp_path: Path) -> None:
    text = """
services:
  - name: web
    command: "sh -c 'serve --port $PORT' ${PYTHON} $UNKNOWN"
    port: 80
    env: {SELF: "http://127.0.0.1:${PORT}/", LITERAL: "$$HOME"}
"""
    mesh_file = tmp_path / "mesh.yaml"
    plan = make_plan(load_mesh(text), options(tmp_path, mesh_file), False)
    (app,) = plan.of_kind(APP)
    port = app.env["PORT"]
    assert app.argv == ("sh", "-c", f"serve --port {port}", sys.executable, "$UNKNOWN")
    assert app.env["SELF"] == f"http://127.0.0.1:{port}/"
    assert app.env["LITERAL"] == "$HOME"


def test_propagators_follow_the_mesh_formats() -> None:
    assert otel_propagators(("b3", "w3c", "jaeger", "baggage")) == "tracecontext,baggage"
    assert otel_propagators(("jaeger",)) == "jaeger"
    assert otel_propagators(("baggage",)) == "baggage"
    assert otel_propagators(()) == "none"


def test_backoff_doubles_up_to_its_maximum() -> None:
    backoff = Backoff(initial=0.5, maximum=4.0)
    assert [backoff.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_every_demo_mesh_file_is_valid() -> None:
    for demo in DEMOS.values():
        mesh = read_mesh_file(demo.mesh_file)
        assert mesh.gateway is not None and mesh.services, demo.name
