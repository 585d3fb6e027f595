"""Realistic device traffic: alarm receivers, Axis devices, CAP feeds,
canonical JSON alerts, telemetry sensors and GPS units.

Pure generators of ``(topic, key, value, headers)``; ``eriop simulate``, the
benchmarks and the tests produce what they return. Every message is valid
unless it is asked to be bad.
"""

from __future__ import annotations

import json
import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pipeline.decoders.alarm.dc09 import crc16_arc

Message = tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]

DEMO_AGENCY = uuid.UUID("5e1b0c3a-7a51-4c8e-9d39-0d3f1b6a2a01")
#: demo jurisdiction: a box around central Helsinki
DEMO_JURISDICTION = (24.80, 60.10, 25.10, 60.30)


@dataclass(frozen=True)
class Vehicle:
    id: uuid.UUID
    identifier: str
    lon: float
    lat: float


@dataclass
class Fleet:
    """The demo resources the simulator's GPS and Axis traffic refers to."""

    vehicles: list[Vehicle] = field(default_factory=list)
    cameras: list[str] = field(default_factory=list)

    @classmethod
    def demo(cls, vehicles: int = 20, cameras: int = 5, seed: int = 7) -> Fleet:
        rnd = random.Random(seed)
        return cls(
            vehicles=[
                Vehicle(
                    uuid.uuid5(DEMO_AGENCY, f"vehicle-{i}"),
                    f"SIM-{i:03d}",
                    24.90 + rnd.uniform(-0.05, 0.05),
                    60.17 + rnd.uniform(-0.03, 0.03),
                )
                for i in range(vehicles)
            ],
            cameras=[f"ACCC8E{0xA00000 + i:06X}" for i in range(cameras)],
        )


def dc09_frame(body: str) -> str:
    """A DC-09 frame with a correct CRC and hex length, wrapped in LF ... CR."""
    raw = body.encode("latin-1")
    return f"\n{crc16_arc(raw):04X}0{len(raw):03X}{body}\r"


def _stamp(t: datetime) -> str:
    return t.strftime("_%H:%M:%S,%m-%d-%Y")


class Traffic:
    """Stateful generator: sequence numbers advance, vehicles move."""

    def __init__(self, fleet: Fleet | None = None, *, devices: int = 50, seed: int = 1) -> None:
        self.fleet = fleet or Fleet.demo()
        self.rnd = random.Random(seed)
        self.devices = [f"SIM-SENSOR-{i:05d}" for i in range(devices)]
        self._seq = 0
        self._heading = {v.id: self.rnd.uniform(0, 360) for v in self.fleet.vehicles}
        self._pos = {v.id: (v.lon, v.lat) for v in self.fleet.vehicles}
        self._axis_state: dict[str, bool] = {}
        self._n = 0

    # --- alerts --------------------------------------------------------------
    def alarm(self, now: datetime) -> Message:
        self._seq = self._seq % 9999 + 1
        account = f"{self.rnd.randrange(1000, 1100):04d}"
        code, zone = self.rnd.choice(
            [("BA", 12), ("FA", 3), ("PA", 1), ("OP", 2), ("CL", 2), ("TA", 7)]
        )
        body = (
            f'"SIA-DCS"{self._seq:04d}R1L1#{account}[#{account}|Nri1/{code}{zone:03d}]{_stamp(now)}'
        )
        envelope = {
            "receiver": "sim-receiver-1",
            "received_at": now.isoformat(),
            "frame": dc09_frame(body),
        }
        return ("alerts.alarm", account.encode(), json.dumps(envelope).encode(), [])

    def axis(self, now: datetime) -> Message:
        serial = self.rnd.choice(self.fleet.cameras)
        state = not self._axis_state.get(serial, False)
        self._axis_state[serial] = state
        path = self.rnd.choice(["Screaming", "GlassBreak", "Shout"])
        payload = {
            "topic": f"axis:AudioClassification/{path}",
            "timestamp": int(now.timestamp() * 1000),
            "message": {
                "source": {"AudioSource": "AudioDevice0Input0"},
                "key": {},
                "data": {"Detected": "1" if state else "0"},
            },
        }
        key = f"axis/{serial}/event/tns:axis/AudioClassification/{path}"
        return ("alerts.axis", key.encode(), json.dumps(payload).encode(), [])

    def json_alert(self, now: datetime) -> Message:
        self._n += 1
        v = self.fleet.vehicles[self._n % len(self.fleet.vehicles)] if self.fleet.vehicles else None
        doc = {
            "source": "lone_worker_app",
            "external_id": f"SIM-{uuid.uuid4()}",
            "type": self.rnd.choice(["panic", "medical", "fire", "intrusion"]),
            "severity": self.rnd.randint(1, 4),
            "title": "Simulated lone worker alarm",
            "location": {"lon": v.lon, "lat": v.lat} if v else None,
            "occurred_at": now.isoformat(),
        }
        return ("alerts.json", b"lone_worker_app", json.dumps(doc).encode(), [])

    def cap(self, now: datetime) -> Message:
        ident = f"SIM-{uuid.uuid4().hex[:12]}"
        xml = (
            '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">'
            f"<identifier>{ident}</identifier><sender>sim@weather.example</sender>"
            f"<sent>{now.replace(microsecond=0).isoformat()}</sent><status>Actual</status>"
            "<msgType>Alert</msgType><scope>Public</scope><info><language>en-US</language>"
            "<category>Met</category><event>Storm</event><urgency>Expected</urgency>"
            "<severity>Severe</severity><certainty>Likely</certainty>"
            "<headline>Storm warning (simulated)</headline><area><areaDesc>Coast</areaDesc>"
            "<circle>60.17,24.94 5</circle></area></info></alert>"
        )
        return ("alerts.cap", b"sim@weather.example", xml.encode(), [])

    def alert(self, now: datetime) -> Message:
        kind = self.rnd.random()
        if kind < 0.5:
            return self.alarm(now)
        if kind < 0.75:
            return self.json_alert(now)
        if kind < 0.95 and self.fleet.cameras:
            return self.axis(now)
        return self.cap(now)

    # --- volume ----------------------------------------------------------------
    def telemetry(self, now: datetime, points: int = 4) -> Message:
        device = self.rnd.choice(self.devices)
        t = now.timestamp()
        if self.rnd.random() < 0.5:
            pack = [
                {
                    "bn": f"{device}:",
                    "bt": t,
                    "n": "battery",
                    "u": "%EL",
                    "v": round(self.rnd.uniform(10, 100), 1),
                }
            ]
            pack += [
                {"n": f"temp{i}", "u": "Cel", "v": round(self.rnd.gauss(20, 3), 2)}
                for i in range(points - 1)
            ]
            return ("telemetry.raw", device.encode(), json.dumps(pack).encode(), [])
        iso = now.isoformat()
        rows = [
            {
                "device_id": device,
                "device_type": "sensor",
                "time": iso,
                "metric": f"m{i}",
                "value": round(self.rnd.random() * 100, 3),
            }
            for i in range(points)
        ]
        return ("telemetry.raw", device.encode(), json.dumps(rows).encode(), [])

    def gps(self, now: datetime) -> Message:
        v = self.rnd.choice(self.fleet.vehicles)
        lon, lat = self._pos[v.id]
        heading = (self._heading[v.id] + self.rnd.uniform(-10, 10)) % 360
        self._heading[v.id] = heading
        step = 0.0001  # about 10 m per report
        lon += step * math.sin(math.radians(heading)) / math.cos(math.radians(lat))
        lat += step * math.cos(math.radians(heading))
        self._pos[v.id] = (lon, lat)
        fix = {
            "resource_id": str(v.id), "lat": round(lat, 7), "lon": round(lon, 7),
            "time": now.isoformat(), "speed": round(self.rnd.uniform(5, 15), 1),
            "heading": round(heading, 1), "accuracy": 5,
        }  # fmt: skip
        return ("gps.raw", v.identifier.encode(), json.dumps(fix).encode(), [])

    def bad(self, topic: str) -> Message:
        """A malformed message of one of the classes the pipeline dead-letters."""
        choice = self.rnd.randrange(4)
        value = [b"\xff\xfe not utf-8", b"{not json", b'{"a": 1, "a": 2}', b"[]"][choice]
        return (topic, b"bad", value, [])

    def stream(self, now_fn: type[datetime] = datetime) -> Iterator[Message]:
        while True:
            now = now_fn.now(UTC)
            yield self.telemetry(now) if self.rnd.random() < 0.7 else self.gps(now)
