"""``eriop``: the command line of ERIOP ingest.

Subcommands import what they need when they run, so ``eriop --help`` and the
small tools start fast and ``pipeline`` itself never imports Faust.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from pipeline import __version__
from pipeline.errors import EriopError
from pipeline.settings import Settings


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.store.migrate import create_database, migrate

    dsn = settings.database_url.get_secret_value()

    async def go() -> None:
        if args.create_db and await create_database(dsn):
            _say("created the database")
        report = await migrate(dsn, progress=_say)
        mode = "TimescaleDB hypertables" if report.timescaledb else "native range partitions"
        _say(
            f"schema up to date: {len(report.applied)} applied, {len(report.already)} already "
            f"applied; time-series tables use {mode}"
        )

    try:
        asyncio.run(go())
    except EriopError as exc:
        _say(f"eriop migrate: {exc.reason}")
        return 2
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    if args.role == "bulk":
        from pipeline.runtime.bulk import run_bulk

        return run_bulk(settings)
    from agents.worker import run

    return run(settings, wait_s=args.wait, loglevel=args.loglevel)


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from eriop.simulate import run_simulation

    return asyncio.run(run_simulation(settings, args))


def cmd_dev(args: argparse.Namespace, settings: Settings) -> int:
    from eriop.dev.run import run_dev

    return run_dev(settings, args)


def cmd_dlq(args: argparse.Namespace, settings: Settings) -> int:
    from eriop.dlq.command import run_dlq

    return int(asyncio.run(run_dlq(settings, args)))


def cmd_watch(args: argparse.Namespace, settings: Settings) -> int:
    from eriop.watch.command import run_watch

    return int(asyncio.run(run_watch(settings, args)))


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from eriop.bench.command import run_bench

    return int(run_bench(settings, args))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="eriop",
        description=(
            "ERIOP ingest: alarm, Axis, CAP, telemetry and GPS events from Kafka into "
            "PostgreSQL and Redis. Configuration comes from ERIOP_* environment variables "
            "(see README)."
        ),
    )
    p.add_argument("--version", action="version", version=f"eriop {__version__}")
    p.add_argument("--log-level", default=os.environ.get("ERIOP_LOG_LEVEL", "info"))
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    m = sub.add_parser("migrate", help="create or upgrade the database schema (idempotent)")
    m.add_argument("--create-db", action="store_true", help="create the database if missing")
    m.set_defaults(func=cmd_migrate)

    w = sub.add_parser("worker", help="run the ingest worker (Kafka -> PostgreSQL + Redis)")
    w.add_argument(
        "--wait", type=float, default=None, metavar="SECONDS",
        help="give up if dependencies are unreachable this long (default: keep retrying)",
    )  # fmt: skip
    w.add_argument("--loglevel", default="warn", choices=["crit", "error", "warn", "info", "debug"])
    # the worker starts its own telemetry/GPS process with --role bulk
    w.add_argument("--role", choices=["worker", "bulk"], default="worker", help=argparse.SUPPRESS)
    w.set_defaults(func=cmd_worker)

    s = sub.add_parser("simulate", help="produce realistic device traffic to Kafka")
    s.add_argument("--rate", type=float, default=200.0, help="telemetry+GPS messages per second")
    s.add_argument("--alert-rate", type=float, default=1.0, help="alerts per second")
    s.add_argument("--duration", type=float, default=None, help="seconds (default: until Ctrl-C)")
    s.add_argument("--devices", type=int, default=50, help="simulated telemetry devices")
    s.add_argument("--seed-resources", action="store_true", help="insert the demo fleet first")
    s.add_argument("--bad-ratio", type=float, default=0.0, help="share of malformed messages")
    s.set_defaults(func=cmd_simulate)

    d = sub.add_parser(
        "dev", help="run everything locally: broker, PostgreSQL, Redis, worker, simulator, status"
    )
    d.add_argument("--rate", type=float, default=200.0, help="simulated messages per second")
    d.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    d.add_argument("--port", type=int, default=9092, help="embedded broker port")
    d.set_defaults(func=cmd_dev)

    q = sub.add_parser(
        "dlq", help="inspect and replay dead letters",
        description="Read eriop.dlq from the beginning (no consumer group, nothing committed).",
    )  # fmt: skip
    qs = q.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    ql = qs.add_parser("list", help="dead letters grouped by error code, with samples")
    ql.add_argument("--samples", type=int, default=2, metavar="N",
                    help="latest sample reasons shown per error code (default 2)")  # fmt: skip
    ql.add_argument("--topic", default=None, metavar="T", help="only dead letters from topic T")
    qr = qs.add_parser(
        "replay", help="send selected dead letters back to their original topic",
        description=(
            "Send the original value, key and headers of the selected dead letters to their "
            "original topic, with header eriop-replayed-from: <partition>:<offset>. Without "
            "filters every dead letter is replayed. Fix the cause first."
        ),
    )  # fmt: skip
    qr.add_argument("--error-code", default=None, metavar="C", help="only this error code")
    qr.add_argument("--topic", default=None, metavar="T", help="only dead letters from topic T")
    qr.add_argument("--dry-run", action="store_true", help="print what would be sent, send nothing")
    q.set_defaults(func=cmd_dlq)

    wa = sub.add_parser("watch", help="dispatcher view: alerts by severity as they arrive")
    wa.add_argument("--catch-up", type=int, default=50, help="recent alerts to show first")
    wa.add_argument("--once", action="store_true", help="print the catch-up and exit")
    wa.add_argument(
        "--color", choices=["auto", "always", "never"], default="auto",
        help="colour by severity (auto: on a terminal, unless NO_COLOR is set)",
    )  # fmt: skip
    wa.set_defaults(func=cmd_watch)

    b = sub.add_parser("bench", help="measure throughput, latency and memory on the embedded stack")
    b.add_argument("--smoke", action="store_true", help="a short run that checks the bench works")
    b.add_argument("--output", default="bench-results/latest.json",
                   help="JSON results (a Markdown copy is written beside it)")  # fmt: skip
    b.add_argument("--alert-rate", type=float, default=200.0, help="alerts per second")
    b.add_argument("--redis-db", type=int, default=12,
                   help="Redis database the bench flushes and uses (default 12)")  # fmt: skip
    b.add_argument("--broker", action="store_true",
                   help="only the embedded broker: alert delivery to a bare consumer while "
                        "telemetry is produced with no worker consuming it")  # fmt: skip
    b.add_argument("--broker-rate", type=float, default=6000.0,
                   help="telemetry messages/s for --broker (default 6000)")  # fmt: skip
    b.set_defaults(func=cmd_bench)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = Settings()
    except Exception as exc:
        _say(f"eriop: invalid configuration: {exc}")
        return 2
    return int(args.func(args, settings))


if __name__ == "__main__":
    sys.exit(main())
