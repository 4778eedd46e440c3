"""The `tracemesh` command: `tracemesh all-in-one` and friends."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from tracemesh.cli import es_commands, iptables_command
from tracemesh.runtime import config as cfg
from tracemesh.runtime import proxy_options

DESCRIPTION = """\
tracemesh: a distributed tracing backend that speaks Jaeger's and OpenTelemetry's protocols.

Send spans with any OpenTelemetry SDK to OTLP gRPC :4317 or HTTP :4318, then open the UI
or the Jaeger query API at http://127.0.0.1:16686. Every flag can also be set with the
environment variable shown in its help (TRACEMESH_...).
"""

COMMANDS = {
    "all-in-one": (
        "collector + query + UI in one process, memory storage (default)",
        "Run every backend role in one process: all receivers (OTLP, Jaeger UDP/HTTP/gRPC, "
        "Zipkin), the pipeline, storage, sampling strategies, the Jaeger query API and UI, and "
        "the admin endpoints.",
    ),
    "collector": (
        "every receiver -> pipeline -> storage",
        "Receive spans in every format and write them to storage. Memory storage is not shared "
        "with other processes: a separate `query` needs a persistent backend.",
    ),
    "query": (
        "the Jaeger query API and UI over storage",
        "Serve the Jaeger HTTP API, api_v3 and the UI from storage written by a collector.",
    ),
    "ingester": (
        "Kafka topic -> storage (the streaming deployment)",
        "Consume spans a `collector --storage kafka` wrote (--kafka.consumer.*) in a consumer "
        "group and write them to storage, committing offsets only once stored. Several "
        "ingesters in one group split the topic's partitions. With memory storage the "
        "ingester also serves the query API and UI over what it stored.",
    ),
    "agent": (
        "UDP Jaeger/Zipkin Thrift -> a collector over OTLP/gRPC; sampling on 5778",
        "Take spans from jaeger-client libraries over UDP (6831 compact, 6832 binary, 5775 "
        "Zipkin), buffer them and forward them to a collector (--agent.collector) over "
        "OTLP/gRPC, reconnecting when it is away; serve sampling strategies on 5778.",
    ),
}

PROXY_COMMANDS = {
    "sidecar": (
        "the mesh sidecar: inbound and outbound proxy with tracing",
        "Stand in front of one service instance. Inbound (--inbound-port): requests from the "
        "mesh go to the local app (--app-port) with a SERVER span each and the trace context "
        "injected. Outbound (--outbound-port): the app's calls (Host: <service>, or through "
        "HTTP_PROXY) are routed by the mesh file's routes to an instance's inbound sidecar "
        "(--registry, --endpoint) with a CLIENT span each. Spans go to --collector.",
    ),
    "gateway": (
        "the ingress gateway: the edge of the mesh, where traces start",
        "Take requests from outside (--port), route them by host and path (the mesh file's "
        "gateway.routes) to a service's inbound sidecars, start the trace and the x-request-id "
        "when none arrives, and report one span per request.",
    ),
}

PROXY_EXAMPLES = """\
examples:
  tracemesh sidecar --service hello --label version=v1 --app-port 8080 \\
      --inbound-port 15006 --outbound-port 15001 --mesh mesh.yaml \\
      --endpoint formatter[version=v1]=127.0.0.1:15106 --collector 127.0.0.1:4317
  tracemesh gateway --mesh mesh.yaml --endpoint hello=127.0.0.1:15006 --sampling 1

/health and /metrics (istio_requests_total, istio_request_duration_milliseconds, span drops)
are on --admin-port.
"""

EXAMPLES = """\
examples:
  tracemesh all-in-one                                  default ports, memory storage
  tracemesh all-in-one --host 0.0.0.0 --memory.max-traces 50000
  TRACEMESH_QUERY_HTTP_PORT=8080 tracemesh all-in-one   any flag as an environment variable

SIGINT or SIGTERM stops accepting spans, flushes what was accepted into storage, then exits.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tracemesh",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (summary, text) in COMMANDS.items():
        role = sub.add_parser(
            name, help=summary, description=text, epilog=EXAMPLES if name == "all-in-one" else None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )  # fmt: skip
        cfg.add_arguments(role)
    for name, (summary, text) in PROXY_COMMANDS.items():
        role = sub.add_parser(
            name, help=summary, description=text, epilog=PROXY_EXAMPLES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )  # fmt: skip
        proxy_options.add_arguments(role, name)
    from tracemesh.runner import commands as runner_commands  # `mesh` and `demo`

    runner_commands.add_mesh_parser(sub)
    runner_commands.add_demo_parser(sub)
    es_commands.add_parsers(sub)
    iptables_command.add_parser(sub)
    from tracemesh.kube import cli as kube_cli  # `operator` and `manifests`

    kube_cli.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["all-in-one", *argv]  # `tracemesh` and `python -m tracemesh` mean all-in-one
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command in PROXY_COMMANDS:
        return _run_proxy(args)
    if args.command in ("mesh", "demo"):
        from tracemesh.runner import commands as runner_commands

        return runner_commands.main(args)
    if args.command == "iptables":
        return iptables_command.run(args)
    if args.command in es_commands.COMMANDS:
        return es_commands.run(args)
    if args.command in ("operator", "manifests", "kube-inject", "control"):
        from tracemesh.kube import cli as kube_cli

        _install_event_loop()
        return kube_cli.run(args)
    config = cfg.from_namespace(args)
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # we log what listens ourselves
    from tracemesh.runtime.process import run
    from tracemesh.storage.api import StorageError

    try:
        _install_event_loop()
        asyncio.run(run(config, args.command))
    except (OSError, ValueError, StorageError) as exc:  # a busy port, a bad flag, bad stored data
        logging.getLogger("tracemesh").error("%s", exc)
        return 1
    return 0


def _run_proxy(args: argparse.Namespace) -> int:
    options = proxy_options.from_namespace(args)
    logging.basicConfig(
        level=options.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    from tracemesh.runtime.proxy_process import run

    try:
        _install_event_loop()
        asyncio.run(run(options, args.command))
    except (OSError, ValueError) as exc:  # a busy port, a bad mesh or registry file, a bad flag
        logging.getLogger("tracemesh").error("%s", exc)
        return 1
    return 0


def _install_event_loop() -> None:
    """uvloop when present: faster sockets for every listener."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


if __name__ == "__main__":
    raise SystemExit(main())
