"""``eriop dev``: the whole pipeline on this machine, with live status.

Starts what is not running (PostgreSQL, Redis, the embedded broker), migrates,
seeds a demo fleet, runs ``eriop worker`` and ``eriop simulate`` as child
processes, and prints records per second per topic, alerts stored and dead
letters every two seconds. Ctrl-C stops everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import asyncpg
from prometheus_client.parser import text_string_to_metric_families

from eriop.dev import stack as devstack
from eriop.dev.front_doors import FrontDoors, front_door_line, start_front_doors, wait_ready
from eriop.simulate import seed_demo
from eriop.traffic import Fleet
from pipeline.errors import EriopError
from pipeline.settings import Settings
from pipeline.store.migrate import create_database, migrate

STATE_DIR = Path(".eriop")


class DevFailed(EriopError):
    """A process of the dev stack exited or did not become ready (exit 1)."""


def _say(msg: str) -> None:
    print(f"[eriop dev] {msg}", file=sys.stderr, flush=True)


def scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
        text = resp.read().decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[s.name][tuple(sorted(s.labels.items()))] = s.value
    return out


def status_lines(prev: dict[str, float], cur: dict[str, float], dt: float, m: dict) -> list[str]:  # type: ignore[type-arg]
    lines = [f"{'topic':<15} {'rec/s':>9} {'stored':>9} {'dup':>7} {'dead':>7} {'skipped':>8}"]
    by_topic: dict[str, dict[str, float]] = defaultdict(dict)
    for labels, v in m.get("eriop_records_total", {}).items():
        d = dict(labels)
        by_topic[d["topic"]][d["outcome"]] = v
    for topic in sorted(by_topic):
        o = by_topic[topic]
        total = sum(o.values())
        rate = (total - prev.get(topic, 0.0)) / dt if dt > 0 else 0.0
        cur[topic] = total
        lines.append(
            f"{topic:<15} {rate:>9.0f} {o.get('stored', 0):>9.0f} {o.get('duplicate', 0):>7.0f} "
            f"{o.get('dead_lettered', 0):>7.0f} {o.get('skipped', 0):>8.0f}"
        )
    alerts = sum(
        v for k, v in m.get("eriop_rows_written_total", {}).items() if ("table", "alerts") in k
    )
    dead = sum(m.get("eriop_dead_letters_total", {}).values())
    pending = sum(m.get("eriop_outbox_pending", {}).values())
    lines.append(
        f"alerts stored {alerts:.0f} · dead letters {dead:.0f} · outbox pending {pending:.0f}"
    )
    return lines


def _env(settings_env: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(settings_env)
    return env


def run_dev(settings: Settings, args: argparse.Namespace) -> int:
    STATE_DIR.mkdir(exist_ok=True)
    started: list[subprocess.Popen[bytes]] = []
    broker: devstack.Broker | None = None
    doors: FrontDoors | None = None
    # a broker the operator named (ERIOP_KAFKA_BOOTSTRAP) is used as it is
    explicit_kafka = "kafka_bootstrap" in settings.model_fields_set
    bootstrap = settings.kafka_bootstrap if explicit_kafka else f"127.0.0.1:{args.port}"
    dsn = settings.database_url.get_secret_value()
    redis_url = settings.redis_url.get_secret_value()
    try:
        _say("checking PostgreSQL and Redis (starting them if needed)")
        devstack.ensure_postgres(dsn)
        devstack.ensure_redis(redis_url)
        fresh_broker = False
        if not explicit_kafka:
            host, port = bootstrap.split(":")
            if devstack.port_open(host, int(port)):
                _say(f"using the broker already listening on {bootstrap}")
            else:
                _say(f"starting the embedded broker on {bootstrap}")
                broker = devstack.Broker(int(port)).start(str(STATE_DIR / "broker.log"))
                fresh_broker = True
        asyncio.run(_prepare(dsn, fresh_broker))
        env = {
            "ERIOP_KAFKA_BOOTSTRAP": bootstrap,
            "ERIOP_EMBEDDED_BROKER": str(not explicit_kafka or settings.embedded_broker).lower(),
            "ERIOP_KAFKA__IDEMPOTENCE": str(explicit_kafka and settings.kafka.idempotence).lower(),
            "ERIOP_DATABASE_URL": dsn,
            "ERIOP_REDIS_URL": redis_url,
            "ERIOP_METRICS_PORT": str(settings.metrics_port),
        }
        cli = [sys.executable, "-m", "eriop.cli"]
        wlog = open(STATE_DIR / "worker.log", "ab")  # noqa: SIM115
        worker = subprocess.Popen(
            [*cli, "worker"], env=_env(env), stdout=wlog, stderr=subprocess.STDOUT
        )
        started.append(worker)
        _say(f"worker started (log: {STATE_DIR / 'worker.log'}); waiting until it is healthy")
        _wait_healthy(settings.metrics_port, worker)
        rs = settings.receiver
        rlog = open(STATE_DIR / "dc09-receiver.log", "ab")  # noqa: SIM115
        receiver = subprocess.Popen(
            [*cli, "dc09-receiver", "--port", str(rs.port), "--metrics-port", str(rs.metrics_port)],
            env=_env(env), stdout=rlog, stderr=subprocess.STDOUT,
        )  # fmt: skip
        started.append(receiver)
        _wait_healthy(rs.metrics_port, receiver, what="the DC-09 receiver", log="dc09-receiver.log")
        _say(f"DC-09 receiver listening on TCP and UDP port {rs.port} (point a panel here)")
        doors = start_front_doors(cli, env, settings, STATE_DIR, _say)
        started.extend(doors.procs)
        for (name, door_port), proc in zip(doors.status_ports.items(), doors.procs, strict=True):
            if not wait_ready(door_port, proc):
                raise DevFailed(f"{name} did not become ready; see .eriop/{name}.log")
        slog = open(STATE_DIR / "simulate.log", "ab")  # noqa: SIM115
        sim = [*cli, "simulate", "--rate", str(args.rate), "--alert-rate", "2"]
        sim += ["--dc09", f"127.0.0.1:{rs.port}"]
        if doors.mqtt_target:
            sim += ["--mqtt", doors.mqtt_target]
        started.append(subprocess.Popen(sim, env=_env(env), stdout=slog, stderr=subprocess.STDOUT))
        _say(
            f"simulated devices sending {args.rate:.0f} msg/s, alarm panels over DC-09; "
            f"metrics on :{settings.metrics_port}/metrics; Ctrl-C stops"
        )
        _status_loop(
            settings.metrics_port, args.duration, started, rs.metrics_port, doors.status_ports
        )
    except KeyboardInterrupt:
        pass
    except EriopError as exc:
        _say(f"cannot start: {exc.reason}")
        return exc.exit_code
    finally:
        _stop_all(started, broker)
        if doors is not None:
            doors.stop()
    return 0


async def _prepare(dsn: str, fresh_broker: bool) -> None:
    await create_database(dsn)
    await migrate(dsn, progress=_say)
    await seed_demo(dsn, Fleet.demo())
    if fresh_broker:
        # positions stored for a previous (in-memory) broker's log mean nothing now
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("DELETE FROM ingest_offsets")
        finally:
            await conn.close()


def _wait_healthy(
    port: int,
    worker: subprocess.Popen[bytes],
    timeout: float = 90,
    what: str = "the worker",
    log: str = "worker.log",
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise DevFailed(f"{what} exited with code {worker.returncode}; see .eriop/{log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise DevFailed(f"{what} did not become healthy; see .eriop/{log}")


def receiver_line(m: dict) -> str:  # type: ignore[type-arg]
    """The DC-09 receiver's answers so far, from its metrics."""
    kinds: dict[str, float] = defaultdict(float)
    for labels, v in m.get("eriop_receiver_replies_total", {}).items():
        kinds[dict(labels)["kind"]] += v
    frames = sum(m.get("eriop_receiver_frames_total", {}).values())
    return (
        f"DC-09 receiver: frames {frames:.0f} · ACK {kinds['ACK']:.0f} · NAK {kinds['NAK']:.0f} "
        f"· DUH {kinds['DUH']:.0f} · unanswered {kinds['none']:.0f}"
    )


def _status_loop(
    port: int,
    duration: float | None,
    procs: list[subprocess.Popen[bytes]],
    receiver_port: int | None = None,
    front_doors: dict[str, int] | None = None,
) -> None:
    began = last = time.monotonic()
    prev: dict[str, float] = {}
    tty = sys.stdout.isatty()
    while duration is None or time.monotonic() - began < duration:
        time.sleep(2)
        for p in procs:
            if p.poll() is not None:
                raise DevFailed(f"a child process exited with code {p.returncode}")
        now = time.monotonic()
        try:
            m = scrape(port)
        except OSError as exc:
            print(f"metrics unavailable: {exc}", flush=True)
            continue
        cur: dict[str, float] = {}
        lines = status_lines(prev, cur, now - last, m)
        if receiver_port is not None:
            try:
                lines.append(receiver_line(scrape(receiver_port)))
            except OSError as exc:
                lines.append(f"DC-09 receiver metrics unavailable: {exc}")
        for name, door_port in (front_doors or {}).items():
            try:
                lines.append(f"{name}: {front_door_line(scrape(door_port))}")
            except OSError as exc:
                lines.append(f"{name} metrics unavailable: {exc}")
        prev, last = cur, now
        if tty:
            print("\033[2J\033[H", end="")
        print(f"ERIOP ingest — {time.strftime('%H:%M:%S')} (Ctrl-C to stop)")
        print("\n".join(lines), flush=True)


def _stop_all(procs: list[subprocess.Popen[bytes]], broker: devstack.Broker | None) -> None:
    for p in reversed(procs):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in reversed(procs):
        try:
            p.wait(40)
        except subprocess.TimeoutExpired:
            p.kill()
    if broker is not None:
        broker.stop()
    _say("stopped")
