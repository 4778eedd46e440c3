"""`tracemesh es-cleaner` and `tracemesh es-rollover`: Jaeger's index maintenance tools, run
against the cluster the `--es.*` options name (see storage/elasticsearch/operations.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from typing import Any

from tracemesh.runtime import config as cfg

COMMANDS = {
    "es-cleaner": "delete Jaeger indices older than --days N (run it daily, as Jaeger's cleaner)",
    "es-rollover": "rollover mode: init (indices + aliases), rollover, lookback",
}


def add_parsers(sub: Any) -> None:
    cleaner = sub.add_parser("es-cleaner", help=COMMANDS["es-cleaner"],
                             description=COMMANDS["es-cleaner"])  # fmt: skip
    cleaner.add_argument("--days", type=int, required=True,
                         help="keep the last N days (0: delete up to today)")  # fmt: skip
    cfg.add_arguments(cleaner, only="--es.")
    rollover = sub.add_parser("es-rollover", help=COMMANDS["es-rollover"],
                              description=COMMANDS["es-rollover"])  # fmt: skip
    rollover.add_argument("action", choices=("init", "rollover", "lookback"))
    rollover.add_argument("--conditions", default='{"max_age": "2d"}',
                          help="rollover: conditions as JSON (default %(default)s)")  # fmt: skip
    rollover.add_argument("--unit", choices=("minutes", "hours", "days"), default="days",
                          help="lookback: unit of --unit-count")  # fmt: skip
    rollover.add_argument(
        "--unit-count",
        type=int,
        default=1,
        help="lookback: keep indices younger than this in the read aliases",
    )
    cfg.add_arguments(rollover, only="--es.")


def run(args: argparse.Namespace) -> int:
    from tracemesh.storage.elasticsearch.factory import config_from
    from tracemesh.storage.elasticsearch.operations import IndexOperations

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = config_from(cfg.from_namespace(args))
    if args.command == "es-rollover":
        from dataclasses import replace

        config = replace(config, use_aliases=True)

    async def go() -> object:
        ops = IndexOperations(config)
        try:
            if args.command == "es-cleaner":
                return await ops.clean(args.days)
            if args.action == "init":
                return await ops.rollover_init()
            if args.action == "rollover":
                return await ops.rollover(json.loads(args.conditions))
            seconds = {"minutes": 60, "hours": 3600, "days": 86400}[args.unit] * args.unit_count
            return await ops.lookback(seconds)
        finally:
            await ops.close()

    try:
        result = asyncio.run(go())
    except Exception as exc:  # a CLI: say what failed and exit non-zero
        logging.getLogger("tracemesh").error("%s failed: %s", args.command, exc)
        return 1
    print(json.dumps(result))
    return 0
