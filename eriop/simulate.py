"""``eriop simulate``: produce realistic device traffic at a chosen rate."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from eriop.mqtt_device import MqttDevices
from eriop.panel import Dc09Panel
from eriop.traffic import DEMO_AGENCY, DEMO_JURISDICTION, Fleet, Traffic
from pipeline.clients.kafka import client_options, ensure_topics
from pipeline.errors import BrokerUnavailable, DatabaseUnavailable
from pipeline.settings import Settings


async def seed_demo(dsn: str, fleet: Fleet) -> None:
    """The demo agency, its jurisdiction, vehicles and Axis devices (idempotent)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO agencies (id, name, code, type) VALUES ($1, 'Demo Fire & Rescue', "
            "'DEMO-FIRE', 'fire') ON CONFLICT DO NOTHING",
            DEMO_AGENCY,
        )
        x0, y0, x1, y1 = DEMO_JURISDICTION
        await conn.execute(
            "INSERT INTO geofences (id, name, kind, agency_id, area) SELECT $1, 'Demo district', "
            "'jurisdiction', $2, ST_Multi(ST_MakeEnvelope($3, $4, $5, $6, 4326))::geography "
            "WHERE NOT EXISTS (SELECT 1 FROM geofences WHERE id = $1)",
            DEMO_AGENCY, DEMO_AGENCY, x0, y0, x1, y1,
        )  # fmt: skip
        for v in fleet.vehicles:
            await conn.execute(
                "INSERT INTO resources (id, type, subtype, name, identifier, agency_id) "
                "VALUES ($1, 'vehicle', 'engine', $2, $2, $3) ON CONFLICT DO NOTHING",
                v.id, v.identifier, DEMO_AGENCY,
            )  # fmt: skip
        for i, serial in enumerate(fleet.cameras):
            await conn.execute(
                "INSERT INTO resources "
                "(type, subtype, name, identifier, agency_id, current_location) "
                "SELECT 'equipment', 'audio_sensor', $1, $2::varchar, $3, "
                "ST_SetSRID(ST_MakePoint($4, $5), 4326)::geography "
                "WHERE NOT EXISTS (SELECT 1 FROM resources WHERE identifier = $2::varchar)",
                f"Demo audio sensor {i + 1}", serial, DEMO_AGENCY, 24.94 + i * 0.01, 60.17,
            )  # fmt: skip
    finally:
        await conn.close()


async def run_simulation(settings: Settings, args: argparse.Namespace) -> int:
    fleet = Fleet.demo()
    if args.seed_resources:
        try:
            await seed_demo(settings.database_url.get_secret_value(), fleet)
        except (OSError, asyncpg.CannotConnectNowError) as exc:
            raise DatabaseUnavailable(f"PostgreSQL unreachable: {exc}") from exc
    await ensure_topics(settings)
    traffic = Traffic(fleet, devices=args.devices)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5,
        **client_options(settings.kafka),
    )  # fmt: skip
    try:
        await producer.start()
    except KafkaError as exc:
        raise BrokerUnavailable(f"Kafka at {settings.kafka_bootstrap}: {exc}") from exc
    panel = _panel(args)
    devices = MqttDevices(args.mqtt) if getattr(args, "mqtt", None) else None
    sent = bad = alerts = 0
    started = time.monotonic()
    next_alert = started
    try:
        while args.duration is None or time.monotonic() - started < args.duration:
            tick = time.monotonic()
            now = datetime.now(UTC)
            due = int(args.rate * (tick - started)) - sent
            for _ in range(max(due, 0)):
                topic, key, value, headers = (
                    traffic.telemetry(now) if traffic.rnd.random() < 0.7 else traffic.gps(now)
                )
                if args.bad_ratio and traffic.rnd.random() < args.bad_ratio:
                    topic, key, value, headers = traffic.bad(topic)
                    bad += 1
                await producer.send(topic, value, key=key, headers=headers or None)
                sent += 1
            while args.alert_rate > 0 and next_alert <= tick:
                topic, key, value, headers = traffic.alert(now)
                if panel is not None and topic == "alerts.alarm":
                    # through the receiver, as a panel sends it
                    panel.offer(json.loads(value)["frame"].encode("latin-1"))
                elif devices is not None and topic == "alerts.axis":
                    devices.publish((key or b"").decode(), value)  # through MQTT and the bridge
                else:
                    await producer.send(topic, value, key=key, headers=headers or None)
                alerts += 1
                next_alert += 1.0 / args.alert_rate
            await asyncio.sleep(0.02)
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass
    finally:
        await producer.stop()
        via = ""
        if panel is not None:
            await panel.close()
            via = f" ({panel.acked} alarm frames acknowledged by the DC-09 receiver)"
        if devices is not None:
            devices.close()
            via += f" ({devices.published} Axis events published over MQTT)"
        print(
            f"eriop simulate: sent {sent} telemetry/GPS ({bad} malformed) and {alerts} alerts{via}",
            file=sys.stderr,
        )
    return 0


def _panel(args: argparse.Namespace) -> Dc09Panel | None:
    """``--dc09 HOST:PORT``: alarm frames go to the receiver over TCP, not to Kafka."""
    target = getattr(args, "dc09", None)
    if not target:
        return None
    host, _, port = str(target).rpartition(":")
    panel = Dc09Panel(host or "127.0.0.1", int(port))
    panel.start()
    return panel
