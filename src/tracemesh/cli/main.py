"""The `tracemesh` command: `tracemesh all-in-one` and friends."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from tracemesh.runtime import config as cfg

DESCRIPTION = """\
tracemesh: a distributed tracing backend that speaks Jaeger's and OpenTelemetry's protocols.

Send spans with any OpenTelemetry SDK to OTLP gRPC :4317 or HTTP :4318, then open the UI
or the Jaeger query API at http://127.0.0.1:16686. Every flag can also be set with the
environment variable shown in its help (TRACEMESH_...).
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
    aio = sub.add_parser(
        "all-in-one",
        help="collector + query + UI in one process, memory storage (default)",
        description="Run every backend role in one process: OTLP receivers, the pipeline, "
        "storage, the Jaeger query API and UI, and the admin endpoints.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cfg.add_arguments(aio)
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
    config = cfg.from_namespace(args)
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # we log what listens ourselves
    from tracemesh.runtime.process import COLLECTOR, QUERY, run

    try:
        _install_event_loop()
        asyncio.run(run(config, (COLLECTOR, QUERY)))
    except OSError as exc:
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
