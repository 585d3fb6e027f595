"""``eriop``: the command line of ERIOP ingest.

Subcommands import what they need when they run, so ``eriop --help`` and the
small tools start fast without the worker's clients.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pipeline import __version__
from pipeline.environment import load_settings
from pipeline.errors import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    ConfigError,
    EriopError,
)
from pipeline.runtime.logs import LEVELS
from pipeline.runtime.logs import configure as configure_logging
from pipeline.settings import Settings

if TYPE_CHECKING:
    from pipeline.runtime.front_door import FrontDoor


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
        return exc.exit_code
    return EXIT_OK


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from agents.worker import run

    return run(settings, wait_s=args.wait)


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


def _front_door(settings: Settings, make: Callable[[], FrontDoor], port: int) -> int:
    """Run a front door's service with its status server until SIGTERM/SIGINT."""
    from pipeline.runtime.front_door import serve_front_door

    async def go() -> int:  # the Kafka producer must be made inside the event loop
        return await serve_front_door(
            make(),
            host=settings.metrics_host,
            port=port,
            shutdown_timeout_s=settings.shutdown_timeout_s,
        )

    return asyncio.run(go())


def cmd_mqtt_bridge(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.sources.mqtt.service import BridgeService

    port = args.metrics_port or settings.mqtt.metrics_port
    return _front_door(settings, lambda: BridgeService(settings), port)


def cmd_cap_poller(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.sources.cap_feed.service import PollerService

    port = args.metrics_port or settings.cap_feeds.metrics_port
    return _front_door(settings, lambda: PollerService(settings), port)


def cmd_dc09_receiver(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.runtime.dc09 import build_receiver

    if args.port is not None:
        receiver = settings.receiver.model_copy(update={"port": args.port})
        settings = settings.model_copy(update={"receiver": receiver})
    port = args.metrics_port or settings.receiver.metrics_port
    return _front_door(settings, lambda: build_receiver(settings), port)


def cmd_decode(args: argparse.Namespace, settings: Settings) -> int:
    from eriop.decode.command import run_decode

    return run_decode(settings, args)


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from eriop.status import run_status

    return run_status(settings, args)


EXIT_CODES = f"""\
exit codes (docs/operations.md, "Exit codes"):
  {EXIT_OK:<3} success
  {EXIT_FAILURE:<3} the command ran and failed (a message that would be dead-lettered,
      a failed benchmark, an unexpected error)
  {EXIT_USAGE:<3} usage error: wrong arguments or an unreadable input file
  {EXIT_UNAVAILABLE:<3} a dependency (Kafka, PostgreSQL, Redis, a worker's status page) is
      unreachable
  {EXIT_CONFIG:<3} invalid configuration (ERIOP_* variables, settings files)
  130 interrupted (Ctrl-C)"""


def cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.environment import effective, reference

    if args.reference:
        sys.stdout.write(reference())
        return EXIT_OK
    for name, value in effective(settings):
        print(f"{name}={value}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="eriop",
        description=(
            "ERIOP ingest: alarm, Axis, CAP, telemetry and GPS events from Kafka into "
            "PostgreSQL and Redis. Configuration comes from ERIOP_* environment variables "
            "(see README)."
        ),
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"eriop {__version__}")
    p.add_argument(
        "--log-level", choices=LEVELS, default=None,
        help="log level of every process (default: ERIOP_LOG_LEVEL, else info)",
    )  # fmt: skip
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    m = sub.add_parser(
        "migrate", help="create or upgrade the database schema (idempotent)",
        description=(
            "Apply the SQL migrations not yet applied to ERIOP_DATABASE_URL, in order, each in "
            "its own transaction; running it again changes nothing. Time-series tables become "
            "TimescaleDB hypertables when the extension is available, else native partitions."
        ),
    )  # fmt: skip
    m.add_argument("--create-db", action="store_true", help="create the database if missing")
    m.set_defaults(func=cmd_migrate)

    w = sub.add_parser(
        "worker", help="run the ingest worker (Kafka -> PostgreSQL + Redis)",
        description=(
            "Consume the inbound topics, decode and store alerts, telemetry and locations in "
            "PostgreSQL, update live state in Redis and publish new alerts. Serves /metrics, "
            "/livez, /readyz and /health on ERIOP_METRICS_PORT; stops cleanly on SIGTERM."
        ),
    )  # fmt: skip
    w.add_argument(
        "--wait", type=float, default=None, metavar="SECONDS",
        help="give up if dependencies are unreachable this long (default: keep retrying)",
    )  # fmt: skip
    w.set_defaults(func=cmd_worker)

    s = sub.add_parser(
        "simulate", help="produce realistic device traffic to Kafka",
        description=(
            "Produce telemetry, GPS and alert messages from a simulated fleet to the inbound "
            "topics (optionally through a DC-09 receiver or an MQTT broker), with a share of "
            "malformed ones on request. For demos and load; never against production topics."
        ),
    )  # fmt: skip
    s.add_argument("--rate", type=float, default=200.0, help="telemetry+GPS messages per second")
    s.add_argument("--alert-rate", type=float, default=1.0, help="alerts per second")
    s.add_argument("--duration", type=float, default=None, help="seconds (default: until Ctrl-C)")
    s.add_argument("--devices", type=int, default=50, help="simulated telemetry devices")
    s.add_argument("--seed-resources", action="store_true", help="insert the demo fleet first")
    s.add_argument("--bad-ratio", type=float, default=0.0, help="share of malformed messages")
    s.add_argument("--dc09", default=None, metavar="HOST:PORT",
                   help="send alarm frames to this DC-09 receiver (TCP), not Kafka")  # fmt: skip
    s.add_argument("--mqtt", default=None, metavar="HOST:PORT",
                   help="publish Axis events to this MQTT broker (for eriop mqtt-bridge) "
                        "instead of producing them to Kafka")  # fmt: skip
    s.set_defaults(func=cmd_simulate)

    d = sub.add_parser(
        "dev", help="run everything locally: broker, PostgreSQL, Redis, worker, simulator, status",
        description=(
            "Start the embedded Kafka-protocol broker, a local PostgreSQL and Redis, migrate, "
            "then run the worker, the front doors and the simulator and print a status line "
            "every few seconds until Ctrl-C (or --duration). State and logs go to .eriop/."
        ),
    )  # fmt: skip
    d.add_argument("--rate", type=float, default=200.0, help="simulated messages per second")
    d.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    d.add_argument("--port", type=int, default=9092, help="embedded broker port")
    d.set_defaults(func=cmd_dev)

    q = sub.add_parser(
        "dlq", help="inspect and replay dead letters",
        description="Read eriop.dlq from the beginning (no consumer group, nothing committed).",
    )  # fmt: skip
    qs = q.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    ql = qs.add_parser(
        "list", help="dead letters grouped by error code, with samples",
        description=(
            "Count the dead letters on eriop.dlq by error code, stage and original topic, with "
            "the latest sample reasons. A record dead-lettered more than once (a worker stopped "
            "before storing its offset) counts once; the repeats folded are reported."
        ),
    )  # fmt: skip
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

    dc = sub.add_parser(
        "decode", help="show what a message would become (no Kafka, no database)",
        description=(
            "Run messages through the worker's own decoders and show what each would "
            "become: an alert, a patch of an existing alert, telemetry or location rows, "
            "a counted discard with its reason, or a dead letter with its error code, "
            "stage and reason. For device integrators: nothing is sent or stored. "
            "Settings (alarm keys, windows, limits) come from ERIOP_* as in the worker. "
            "Exit 0 when every message decodes, 1 when one would be dead-lettered."
        ),
    )  # fmt: skip
    dc.add_argument("topic", metavar="TOPIC",
                    help="inbound topic: alerts.alarm, alerts.axis, alerts.cap, alerts.json, "
                         "telemetry.raw or gps.raw")  # fmt: skip
    dc.add_argument("file", metavar="FILE", nargs="?", default="-",
                    help="the message (its exact bytes); - or nothing reads stdin")  # fmt: skip
    dcf = dc.add_mutually_exclusive_group()
    dcf.add_argument("--lines", action="store_true", help="one message per line of FILE")
    dcf.add_argument("--jsonl", action="store_true",
                     help="FILE in the samples format: one JSON object per line with "
                          "value (or value_b64), key, headers, timestamp "
                          "(tests/fixtures/samples)")  # fmt: skip
    dc.add_argument("--key", default=None, help="the Kafka key of the message(s)")
    dc.add_argument("--header", action="append", metavar="NAME=VALUE",
                    help="a Kafka header (repeatable)")  # fmt: skip
    dc.add_argument("--time", default=None, metavar="ISO|MS",
                    help="Kafka timestamp and pipeline clock (default now; --jsonl: each "
                         "line's timestamp)")  # fmt: skip
    dc.add_argument("--resources", default=None, metavar="JSON",
                    help="resources rows (a list, or {\"resources\": [...]}) to look Axis "
                         "devices and GPS units up in, instead of the database")  # fmt: skip
    dc.add_argument("--json", action="store_true", help="one JSON object per message")
    dc.set_defaults(func=cmd_decode)

    st = sub.add_parser(
        "status", help="a running worker's state from its /metrics and /health",
        description=(
            "Read a running worker's /health and two /metrics pages a moment apart and "
            "show its dependencies, per-topic rates, consumer lag, paused streams, "
            "partitions assigned per consumer group, the outbox backlog and dead letters. "
            "Exit 69 when nothing answers at the URL."
        ),
    )  # fmt: skip
    st.add_argument("--url", default=None,
                    help="the worker's status address (default http://127.0.0.1:"
                         "ERIOP_METRICS_PORT, 9108)")  # fmt: skip
    st.add_argument("--interval", type=float, default=2.0, metavar="SECONDS",
                    help="time between the two scrapes for rates (default 2)")  # fmt: skip
    st.add_argument("--json", action="store_true", help="the state as one JSON object")
    st.set_defaults(func=cmd_status)

    cf = sub.add_parser(
        "config", help="the settings in force (secrets masked), or the reference of all",
        description=(
            "Print every setting as the environment and secret files set it, one "
            "VARIABLE=value a line, secrets masked; with --reference, the Markdown table "
            "of every setting (docs/configuration.md is this output)."
        ),
    )  # fmt: skip
    cf.add_argument("--reference", action="store_true", help="every setting, documented")
    cf.set_defaults(func=cmd_config)

    wa = sub.add_parser(
        "watch", help="dispatcher view: alerts by severity as they arrive",
        description=(
            "Show the latest alerts from Redis (the stream eriop:stream:alerts), then follow "
            "new ones on the channel eriop.alerts, coloured by severity; reconnects by itself "
            "when Redis comes back."
        ),
    )  # fmt: skip
    wa.add_argument("--catch-up", type=int, default=50, help="recent alerts to show first")
    wa.add_argument("--once", action="store_true", help="print the catch-up and exit")
    wa.add_argument(
        "--color", choices=["auto", "always", "never"], default="auto",
        help="colour by severity (auto: on a terminal, unless NO_COLOR is set)",
    )  # fmt: skip
    wa.set_defaults(func=cmd_watch)

    b = sub.add_parser(
        "bench", help="measure throughput, latency and memory on the embedded stack",
        description=(
            "Run the benchmark scenarios against the embedded broker, a scratch PostgreSQL "
            "database and a Redis database of its own, and write JSON and Markdown results. "
            "Exit 1 when a run fails or its results are implausible."
        ),
    )  # fmt: skip
    b.add_argument("--smoke", action="store_true", help="a short run that checks the bench works")
    b.add_argument("--output", default="bench-results/latest.json",
                   help="JSON results (a Markdown copy is written beside it)")  # fmt: skip
    b.add_argument("--alert-rate", type=float, default=200.0, help="alerts per second")
    b.add_argument("--redis-db", type=int, default=12,
                   help="Redis database the bench flushes and uses (default 12)")  # fmt: skip
    b.add_argument("--profile", action="store_true",
                   help="only telemetry and GPS, once each, with py-spy sampling the worker's "
                        "telemetry/GPS processes; summaries in bench-results/profile/")  # fmt: skip
    b.add_argument("--native", action="store_true",
                   help="with --profile: sample native frames too, so the compiled modules' "
                        "functions show (py-spy pauses the processes for each sample, so "
                        "rates are lower)")  # fmt: skip
    b.add_argument("--broker", action="store_true",
                   help="only the embedded broker: alert delivery to a bare consumer while "
                        "telemetry is produced with no worker consuming it")  # fmt: skip
    b.add_argument("--broker-rate", type=float, default=6000.0,
                   help="telemetry messages/s for --broker (default 6000)")  # fmt: skip
    b.add_argument(
        "--receiver",
        action="store_true",
        help="only the DC-09 receiver: many TCP panels, ACK latency (not in --smoke)",
    )
    b.add_argument(
        "--panels",
        type=int,
        default=1000,
        help="concurrent TCP panels for --receiver (default 1000)",
    )
    b.add_argument(
        "--receiver-rate",
        type=float,
        default=500.0,
        help="frames/s in total for --receiver (default 500)",
    )
    b.add_argument(
        "--receiver-seconds",
        type=float,
        default=30.0,
        help="how long --receiver sends (default 30)",
    )
    b.set_defaults(func=cmd_bench)
    mb = sub.add_parser(
        "mqtt-bridge", help="forward Axis MQTT events to alerts.axis (PUBACK after Kafka ack)",
        description=(
            "Subscribe to ERIOP_MQTT__TOPICS on the MQTT broker (QoS 1, persistent session) and "
            "produce each message to alerts.axis, keyed by its MQTT topic. A message is "
            "acknowledged to the broker only after Kafka acknowledged it."
        ),
    )  # fmt: skip
    mb.add_argument("--metrics-port", type=int, default=None,
                    help="status port (default ERIOP_MQTT__METRICS_PORT, 9109)")  # fmt: skip
    mb.set_defaults(func=cmd_mqtt_bridge)

    cp = sub.add_parser(
        "cap-poller", help="poll CAP feeds (Atom/RSS/document) into alerts.cap",
        description=(
            "Poll each source of ERIOP_CAP_FEEDS__SOURCES (conditional GET, backoff) and produce "
            "every new CAP document, unchanged, to alerts.cap keyed by its sender. What was "
            "already sent is kept in PostgreSQL."
        ),
    )  # fmt: skip
    cp.add_argument("--metrics-port", type=int, default=None,
                    help="status port (default ERIOP_CAP_FEEDS__METRICS_PORT, 9110)")  # fmt: skip
    cp.set_defaults(func=cmd_cap_poller)
    dr = sub.add_parser(
        "dc09-receiver", help="receive SIA DC-09 alarm frames (TCP+UDP), ACK after Kafka ack",
        description=(
            "Listen for SIA DC-09 frames from alarm panels on TCP and UDP (same port, "
            "ERIOP_RECEIVER__PORT, default 9500). Each accepted frame is produced to alerts.alarm "
            "in the receiver envelope, keyed by account, and answered ACK only after Kafka "
            "acknowledged it; NAK for a time stamp outside the window, DUH for a frame that "
            "cannot be understood, and no answer while Kafka is unavailable. Keys: "
            "ERIOP_ALARM__ACCOUNTS and ERIOP_RECEIVER__ACCOUNTS_FILE (reloaded on SIGHUP)."
        ),
    )  # fmt: skip
    dr.add_argument("--port", type=int, default=None,
                    help="TCP and UDP port (default ERIOP_RECEIVER__PORT, 9500)")  # fmt: skip
    dr.add_argument("--metrics-port", type=int, default=None,
                    help="status port (default ERIOP_RECEIVER__METRICS_PORT, 9111)")  # fmt: skip
    dr.set_defaults(func=cmd_dc09_receiver)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        # unknown ERIOP_* variables and bad values, named as the operator set them
        settings = load_settings()
    except ConfigError as exc:
        _say(f"eriop: {exc.reason}")
        return exc.exit_code
    if args.log_level is not None:
        settings = settings.model_copy(update={"log_level": args.log_level})
    configure_logging(settings.log_level, settings.log_format)
    try:
        return int(args.func(args, settings))
    except EriopError as exc:  # a subcommand that did not report it itself
        _say(f"eriop {args.command}: {exc.reason}")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
