"""Poison messages: for every inbound topic, one builder per bad-input class
that the pipeline must dead-letter, each with the ``error_code`` it must get
(docs/formats.md sections 0.1 and 7, pipeline/errors.py).

Every builder makes a message that fails at exactly one step of the order of
checks: the steps before it pass (a bad-CRC frame is otherwise a valid alarm, a
fix of an unknown resource is otherwise a valid fix), so the code the worker
gives is the one of the class. Builders take an index so that repeated
messages of one class differ.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import reduce
from operator import xor
from typing import Any, Final

from eriop.traffic import Fleet, dc09_frame
from pipeline.clients.kafka import INBOUND_TOPICS
from pipeline.decoders.alarm.dc09_data import cid16_check_digit
from tests.faults.conftest import Expect, Msg, Planned

#: the documented test key (docs/formats.md 1.11); the account has a key, so an
#: encrypted frame that cannot be decrypted is ``decrypt_failed``
KEYED_ACCOUNT: Final = "5F21"
ALARM_ACCOUNTS: Final = json.dumps({KEYED_ACCOUNT: {"key": "8A3F0C51D27E4B96A1C3E5F70819B2D4"}})
#: a small limit, so that oversize messages stay cheap to produce
MAX_MESSAGE_BYTES: Final = 65_536

#: The codes the contract lists for each topic and input can reach. CAP has no
#: ``nul_in_text`` (XML cannot carry U+0000: such a document is ``not_xml``), and
#: only telemetry and GPS have a time window.
CODES_BY_TOPIC: Final[Mapping[str, frozenset[str]]] = {
    "alerts.alarm": frozenset(
        {"unknown_format", "oversize", "not_utf8", "not_json", "bad_checksum",
         "encrypted_no_key", "decrypt_failed", "missing_field", "invalid_value",
         "value_out_of_range", "nul_in_text"}
    ),
    "alerts.axis": frozenset(
        {"unknown_format", "oversize", "not_utf8", "not_json", "missing_field",
         "invalid_value", "value_out_of_range", "nul_in_text"}
    ),
    "alerts.cap": frozenset(
        {"unknown_format", "oversize", "not_utf8", "not_xml", "missing_field",
         "invalid_value", "value_out_of_range"}
    ),
    "alerts.json": frozenset(
        {"unknown_format", "oversize", "not_utf8", "not_json", "missing_field",
         "invalid_value", "value_out_of_range", "nul_in_text", "write_rejected"}
    ),
    "telemetry.raw": frozenset(
        {"unknown_format", "oversize", "not_utf8", "not_json", "missing_field",
         "invalid_value", "value_out_of_range", "timestamp_out_of_window", "nul_in_text"}
    ),
    "gps.raw": frozenset(
        {"unknown_format", "oversize", "not_utf8", "not_json", "bad_checksum",
         "missing_field", "invalid_value", "value_out_of_range",
         "timestamp_out_of_window", "nul_in_text", "unknown_device"}
    ),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Poison:
    """One bad-input class on one topic."""

    topic: str
    code: str
    what: str
    build: Callable[[int], Msg]


def _j(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def _nmea(body: str) -> str:
    return f"${body}*{reduce(xor, body.encode(), 0):02X}"


class PoisonFactory:
    """Builders of every class, for messages produced around ``now``."""

    def __init__(self, tag: str, fleet: Fleet, *, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.tag = tag
        self.fleet = fleet
        self.max_bytes = max_bytes
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.classes: list[Poison] = [
            *self._alarm(),
            *self._axis(),
            *self._cap(),
            *self._json(),
            *self._telemetry(),
            *self._gps(),
        ]

    def of(self, topic: str) -> list[Poison]:
        return [p for p in self.classes if p.topic == topic]

    def build(self, topic: str, n: int) -> list[Planned]:
        """``n`` messages cycling through the topic's classes (each at least once)."""
        classes = self.of(topic)
        n = max(n, len(classes))
        out: list[Planned] = []
        for i in range(n):
            p = classes[i % len(classes)]
            out.append((p.build(i), Expect("dlq", p.code)))
        return out

    def _oversize(self, topic: str, key: bytes, i: int) -> Msg:
        pad = "x" * (self.max_bytes + 4_000 + i)
        return (topic, key, _j({"pad": pad, "n": i}), [])

    # --- alerts.alarm ---------------------------------------------------------

    def _alarm(self) -> list[Poison]:
        t = "alerts.alarm"
        stamp = self.now.strftime("_%H:%M:%S,%m-%d-%Y")

        def acct(i: int) -> str:
            return f"9E{i % 100:02d}"

        def seq(i: int) -> str:
            return f"{i % 9000 + 1:04d}"

        def sia(i: int, data: str | None = None) -> str:
            a = acct(i)
            return dc09_frame(
                f'"SIA-DCS"{seq(i)}R1L1#{a}[{data or f"#{a}|Nri1/BA{i % 99 + 1:03d}"}]{stamp}'
            )

        def envelope(i: int, **fields: Any) -> bytes:
            doc = {
                "receiver": "poison-rcv", "received_at": self.now.isoformat(), "frame": sia(i),
            }  # fmt: skip
            doc.update(fields)
            return _j({k: v for k, v in doc.items() if v is not None})

        def raw(i: int, value: bytes) -> Msg:
            return (t, acct(i).encode(), value, [])

        def bad_crc(i: int) -> Msg:
            frame = sia(i)
            crc = int(frame[1:5], 16) ^ 0x5A5A
            return raw(i, f"\n{crc:04X}{frame[5:]}".encode())

        def cid16_bad_sum(i: int) -> Msg:
            first15 = f"9{i % 10}{(i // 10) % 10}8" + "18111001003"
            good = cid16_check_digit(first15)
            wrong = next(d for d in "123456789BCDEF" if d != good and d != "0")
            return raw(i, envelope(i, frame=first15 + wrong))

        def encrypted(i: int, account: str, cipher: str) -> bytes:
            return dc09_frame(f'"*SIA-DCS"{seq(i)}L1#{account}[{cipher}').encode()

        return [
            Poison(t, "unknown_format", "empty value", lambda i: raw(i, b"")),
            Poison(t, "unknown_format", "receiver reply token", lambda i: raw(i, b"ACK")),
            Poison(t, "oversize", "larger than max_message_bytes",
                   lambda i: self._oversize(t, acct(i).encode(), i)),
            Poison(t, "not_utf8", "envelope bytes not UTF-8",
                   lambda i: raw(i, b'{"receiver": "rcv-\xff\xfe", "frame": "x"}')),
            Poison(t, "not_json", "envelope cut off",
                   lambda i: raw(i, envelope(i)[:40])),
            Poison(t, "not_json", "envelope with a duplicate key",
                   lambda i: raw(i, b'{"receiver": "a", "receiver": "b", "frame": "x"}')),
            Poison(t, "bad_checksum", "DC-09 CRC altered", bad_crc),
            Poison(t, "bad_checksum", "Contact ID digit sum", cid16_bad_sum),
            Poison(t, "encrypted_no_key", "encrypted frame, account without key",
                   lambda i: raw(i, encrypted(i, acct(i), "8AEF21A617EB12E95958D177DB4D358D"))),
            Poison(t, "decrypt_failed", "ciphertext not whole AES blocks",
                   lambda i: raw(i, encrypted(i, KEYED_ACCOUNT, "0123456789ABCDEF"))),
            Poison(t, "decrypt_failed", "ciphertext of odd length",
                   lambda i: raw(i, encrypted(i, KEYED_ACCOUNT, "ABC"))),
            Poison(t, "missing_field", "envelope without receiver",
                   lambda i: raw(i, envelope(i, receiver=None))),
            Poison(t, "missing_field", "SIA event without a code",
                   lambda i: raw(i, sia(i, f"#{acct(i)}|Nri1/").encode())),
            Poison(t, "invalid_value", "SIA block neither N nor A",
                   lambda i: raw(i, sia(i, f"#{acct(i)}|XBA001").encode())),
            Poison(t, "invalid_value", "received_at not a time",
                   lambda i: raw(i, envelope(i, received_at="yesterday"))),
            Poison(t, "value_out_of_range", "Contact ID qualifier 2",
                   lambda i: raw(i, dc09_frame(
                       f'"ADM-CID"{seq(i)}R1L1#{acct(i)}[#{acct(i)}|2110 01 004]{stamp}'
                   ).encode())),
            Poison(t, "value_out_of_range", "receiver longer than 100 chars",
                   lambda i: raw(i, envelope(i, receiver="r" * 101))),
            Poison(t, "nul_in_text", "NUL in the envelope",
                   lambda i: raw(i, envelope(i, receiver="rcv\u0000north"))),
        ]  # fmt: skip

    # --- alerts.axis ----------------------------------------------------------

    def _axis(self) -> list[Poison]:
        t = "alerts.axis"
        path = "AudioClassification/Screaming"
        now_ms = round(self.now.timestamp() * 1000)

        def key(i: int) -> bytes:
            return f"axis/ACCC8EFF{i:04X}/event/tns:axis/{path}".encode()

        def event(i: int, **changes: Any) -> bytes:
            doc: dict[str, Any] = {
                "topic": f"axis:{path}", "timestamp": now_ms + i,
                "message": {"source": {"AudioSource": "AudioDevice0Input0"}, "key": {},
                            "data": {"Detected": "1"}},
            }  # fmt: skip
            doc.update(changes)
            return _j({k: v for k, v in doc.items() if v is not None})

        def msg(i: int, value: bytes) -> Msg:
            return (t, key(i), value, [])

        nul = {"source": {}, "key": {}, "data": {"Detected": "1\u0000"}}
        return [
            Poison(t, "unknown_format", "empty value", lambda i: msg(i, b"")),
            Poison(t, "unknown_format", "a JSON array",
                   lambda i: msg(i, b"[" + event(i) + b"]")),
            Poison(t, "oversize", "larger than max_message_bytes",
                   lambda i: self._oversize(t, key(i), i)),
            Poison(t, "not_utf8", "bytes not UTF-8",
                   lambda i: msg(i, b'{"topic": "axis:\xc3\x28"}')),
            Poison(t, "not_json", "cut off", lambda i: msg(i, event(i)[:30])),
            Poison(t, "missing_field", "no message",
                   lambda i: msg(i, event(i, message=None))),
            Poison(t, "invalid_value", "timestamp not a time",
                   lambda i: msg(i, event(i, timestamp="yesterday"))),
            Poison(t, "value_out_of_range", "timestamp beyond any date",
                   lambda i: msg(i, event(i, timestamp=1e300))),
            Poison(t, "nul_in_text", "NUL in a data item",
                   lambda i: msg(i, event(i, message=nul))),
        ]  # fmt: skip

    # --- alerts.cap -----------------------------------------------------------

    def _cap(self) -> list[Poison]:
        t = "alerts.cap"
        sender = "poison@weather.example"
        sent = self.now.isoformat()

        def doc(i: int, *, ns: str = "urn:oasis:names:tc:emergency:cap:1.2",
                identifier: str | None = None, status: str = "Actual",
                polygon: str = "60.10,24.90 60.20,24.90 60.20,25.00 60.10,24.90",
                headline: str = "Storm warning") -> str:  # fmt: skip
            ident = f"<identifier>{identifier}</identifier>" if identifier is not None else ""
            return (
                f'<alert xmlns="{ns}">{ident}<sender>{sender}</sender>'
                f"<sent>{sent}</sent><status>{status}</status><msgType>Alert</msgType>"
                "<scope>Public</scope><info><language>en-US</language><category>Met</category>"
                "<event>Storm</event><urgency>Expected</urgency><severity>Severe</severity>"
                f"<certainty>Likely</certainty><headline>{headline}</headline><area>"
                f"<areaDesc>Coast</areaDesc><polygon>{polygon}</polygon></area></info></alert>"
            )

        def ident(i: int) -> str:
            return f"POISON-{self.tag}-{i}"

        def msg(value: bytes) -> Msg:
            return (t, sender.encode(), value, [])

        return [
            Poison(t, "unknown_format", "empty value", lambda i: msg(b"")),
            Poison(t, "unknown_format", "not the CAP namespace",
                   lambda i: msg(doc(i, ns="urn:example:not-cap", identifier=ident(i)).encode())),
            Poison(t, "oversize", "larger than max_message_bytes",
                   lambda i: self._oversize(t, sender.encode(), i)),
            Poison(t, "not_utf8", "bytes not UTF-8",
                   lambda i: msg(doc(i, identifier=ident(i)).encode().replace(
                       b"Storm warning", b"Storm \xff warning"))),
            Poison(t, "not_xml", "document cut off inside <info>",
                   lambda i: msg(doc(i, identifier=ident(i)).encode()[:320])),
            Poison(t, "not_xml", "a DTD",
                   lambda i: msg(b'<!DOCTYPE alert [<!ENTITY e "x">]>'
                                 + doc(i, identifier=ident(i)).encode())),
            Poison(t, "missing_field", "no identifier", lambda i: msg(doc(i).encode())),
            Poison(t, "invalid_value", "status outside the enumeration",
                   lambda i: msg(doc(i, identifier=ident(i), status="Bogus").encode())),
            Poison(t, "value_out_of_range", "polygon latitude 95",
                   lambda i: msg(doc(i, identifier=ident(i),
                                     polygon="95.0,24.9 60.2,24.9 60.2,25.0 95.0,24.9").encode())),
        ]  # fmt: skip

    # --- alerts.json ----------------------------------------------------------

    def _json(self) -> list[Poison]:
        t = "alerts.json"

        def alert(i: int, **changes: Any) -> dict[str, Any]:
            doc: dict[str, Any] = {
                "source": "poison_feed", "external_id": f"{self.tag}-p{i}", "type": "panic",
                "severity": 2, "title": f"poison {i}", "occurred_at": self.now.isoformat(),
            }  # fmt: skip
            doc.update(changes)
            return {k: v for k, v in doc.items() if v is not None}

        def msg(value: bytes) -> Msg:
            return (t, b"poison", value, [])

        def text(i: int, **changes: Any) -> Msg:
            return msg(_j(alert(i, **changes)))

        deep = "[" * 40 + "1" + "]" * 40
        return [
            Poison(t, "unknown_format", "empty value", lambda i: msg(b"")),
            Poison(t, "unknown_format", "an array of alerts",
                   lambda i: msg(_j([alert(i)]))),
            Poison(t, "oversize", "larger than max_message_bytes",
                   lambda i: self._oversize(t, b"poison", i)),
            Poison(t, "not_utf8", "bytes not UTF-8",
                   lambda i: msg(_j(alert(i)).replace(b"poison ", b"poison \xe9 "))),
            Poison(t, "not_json", "cut off", lambda i: msg(_j(alert(i))[:25])),
            Poison(t, "not_json", "a duplicate key",
                   lambda i: msg(_j(alert(i))[:-1] + b', "type": "fire"}')),
            Poison(t, "not_json", "nesting deeper than 32",
                   lambda i: msg(_j(alert(i))[:-1] + f', "metadata": {{"d": {deep}}}}}'.encode())),
            Poison(t, "missing_field", "no external_id",
                   lambda i: text(i, external_id=None)),
            Poison(t, "invalid_value", "severity as a string",
                   lambda i: text(i, severity="2")),
            Poison(t, "invalid_value", "NaN",
                   lambda i: msg(_j(alert(i, severity=None))[:-1] + b', "severity": NaN}')),
            Poison(t, "value_out_of_range", "title of 300 chars",
                   lambda i: text(i, title="T" * 300)),
            Poison(t, "nul_in_text", "NUL in the description",
                   lambda i: text(i, description="SOS\u0000")),
            Poison(t, "write_rejected", "an integer PostgreSQL jsonb cannot hold",
                   lambda i: msg(_j(alert(i))[:-1]
                                 + b', "metadata": {"counter": 123456789012345678901234567890}}')),
        ]  # fmt: skip

    # --- telemetry.raw --------------------------------------------------------

    def _telemetry(self) -> list[Poison]:
        t = "telemetry.raw"
        now = self.now

        def dev(i: int) -> str:
            return f"POISON-{self.tag}-{i % 50:02d}"

        def simple(i: int, **changes: Any) -> dict[str, Any]:
            doc: dict[str, Any] = {
                "device_id": dev(i), "device_type": "probe", "time": now.isoformat(),
                "metric": "temp", "value": 20.5,
            }  # fmt: skip
            doc.update(changes)
            return {k: v for k, v in doc.items() if v is not None}

        def msg(i: int, value: bytes, headers: list[tuple[str, bytes]] | None = None) -> Msg:
            return (t, dev(i).encode(), value, headers or [])

        def senml(i: int, *records: dict[str, Any]) -> bytes:
            return _j([{"bn": f"{dev(i)}:", "bt": now.timestamp()}, *records])

        return [
            Poison(t, "unknown_format", "empty value", lambda i: msg(i, b"")),
            Poison(t, "unknown_format", "object without device_id",
                   lambda i: msg(i, _j({"temperature": 20.5}))),
            Poison(t, "unknown_format", "SenML must-understand label",
                   lambda i: msg(i, senml(i, {"n": "temp", "v": 1, "unit_": "x"}))),
            Poison(t, "oversize", "larger than max_message_bytes",
                   lambda i: self._oversize(t, dev(i).encode(), i)),
            Poison(t, "not_utf8", "bytes not UTF-8",
                   lambda i: msg(i, b'{"device_id":"SCBA-0457","metric":"temp","value":\xff\xfe}')),
            Poison(t, "not_json", "cut off", lambda i: msg(i, _j(simple(i))[:30])),
            Poison(t, "missing_field", "no time", lambda i: msg(i, _j(simple(i, time=None)))),
            Poison(t, "missing_field", "SenML pack without a value",
                   lambda i: msg(i, senml(i, {"n": "temp", "u": "Cel"}))),
            Poison(t, "invalid_value", "SenML record with v and vs",
                   lambda i: msg(i, senml(i, {"n": "door", "v": 1, "vs": "open"}))),
            Poison(t, "invalid_value", "value not a number",
                   lambda i: msg(i, _j(simple(i, value="warm")))),
            Poison(t, "value_out_of_range", "text of 300 chars",
                   lambda i: msg(i, _j(simple(i, value=None, text="t" * 300)))),
            Poison(t, "timestamp_out_of_window", "an hour in the future",
                   lambda i: msg(i, _j(simple(i, time=(now + timedelta(hours=1)).isoformat())))),
            Poison(t, "timestamp_out_of_window", "30 days old",
                   lambda i: msg(i, _j(simple(i, time=(now - timedelta(days=30)).isoformat())))),
            Poison(t, "nul_in_text", "NUL in the device id",
                   lambda i: msg(i, _j(simple(i, device_id=f"{dev(i)}\u0000")))),
            Poison(t, "nul_in_text", "NUL in the device_type header",
                   lambda i: msg(i, senml(i, {"n": "temp", "v": 1.5}),
                                 [("device_type", b"probe\x00x")])),
        ]  # fmt: skip

    # --- gps.raw --------------------------------------------------------------

    def _gps(self) -> list[Poison]:
        t = "gps.raw"
        now = self.now
        vehicles = self.fleet.vehicles
        hhmmss = now.strftime("%H%M%S")
        ddmmyy = now.strftime("%d%m%y")

        def ident(i: int) -> str:
            return vehicles[i % len(vehicles)].identifier

        def fix(i: int, **changes: Any) -> dict[str, Any]:
            doc: dict[str, Any] = {
                "identifier": ident(i), "lat": 60.17, "lon": 24.94, "time": now.isoformat(),
                "speed": 5.0, "heading": 90.0, "accuracy": 5,
            }  # fmt: skip
            doc.update(changes)
            return {k: v for k, v in doc.items() if v is not None}

        def msg(i: int, value: bytes) -> Msg:
            return (t, ident(i).encode(), value, [])

        rmc = f"GPRMC,{hhmmss}.00,A,6010.2000,N,02456.4000,E,10.0,90.0,{ddmmyy},,,A"
        bad = _nmea(rmc)[:-2] + f"{int(_nmea(rmc)[-2:], 16) ^ 1:02X}"
        gsv = _nmea("GPGSV,1,1,04,01,40,083,46,02,17,308,41,12,07,344,39,14,22,228,45")
        return [
            Poison(t, "unknown_format", "empty value", lambda i: msg(i, b"")),
            Poison(t, "unknown_format", "neither JSON nor NMEA",
                   lambda i: msg(i, b"lat=60.17 lon=24.94")),
            Poison(t, "unknown_format", "NMEA without RMC or GGA",
                   lambda i: msg(i, (gsv + "\r\n").encode())),
            Poison(t, "oversize", "larger than max_message_bytes",
                   lambda i: self._oversize(t, ident(i).encode(), i)),
            Poison(t, "not_utf8", "bytes not UTF-8",
                   lambda i: msg(i, b'{"identifier": "\xff", "lat": 60.1}')),
            Poison(t, "not_json", "cut off", lambda i: msg(i, _j(fix(i))[:30])),
            Poison(t, "bad_checksum", "NMEA checksum", lambda i: msg(i, (bad + "\r\n").encode())),
            Poison(t, "missing_field", "no lat", lambda i: msg(i, _j(fix(i, lat=None)))),
            Poison(t, "invalid_value", "lat as text",
                   lambda i: msg(i, _j(fix(i, lat="sixty")))),
            Poison(t, "invalid_value", "time without offset",
                   lambda i: msg(i, _j(fix(i, time=now.replace(tzinfo=None).isoformat())))),
            Poison(t, "value_out_of_range", "null island",
                   lambda i: msg(i, _j(fix(i, lat=0.0, lon=0.0)))),
            Poison(t, "value_out_of_range", "latitude 95", lambda i: msg(i, _j(fix(i, lat=95.0)))),
            Poison(t, "timestamp_out_of_window", "an hour in the future",
                   lambda i: msg(i, _j(fix(i, time=(now + timedelta(hours=1)).isoformat())))),
            Poison(t, "nul_in_text", "NUL in the source",
                   lambda i: msg(i, _j(fix(i, source="gps\u0000")))),
            Poison(t, "unknown_device", "no such resource",
                   lambda i: (t, b"GHOST", _j(fix(i, identifier=f"GHOST-{self.tag}-{i}")), [])),
        ]  # fmt: skip


def codes_covered(factory: PoisonFactory) -> dict[str, set[str]]:
    return {t: {p.code for p in factory.of(t)} for t in INBOUND_TOPICS}
