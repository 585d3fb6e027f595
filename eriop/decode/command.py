"""``eriop decode TOPIC [FILE|-]``: what messages would become in the pipeline.

The message is run through the worker's own decoders and stages, with no Kafka
and no database: an alert, a patch of an existing alert, telemetry or location
rows, a counted discard with its reason, or a dead letter with its error code,
stage and reason (docs/formats.md). Results go to stdout, errors to stderr.

Exit codes: 0 every message decodes (a discard included), 1 at least one would
be dead-lettered, 2 the command line or the input file is wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from eriop.decode.engine import Decoder, Resources, load_resources
from eriop.decode.view import as_json, as_text
from pipeline.clients.kafka import INBOUND_TOPICS
from pipeline.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, EriopError
from pipeline.settings import Settings
from schemas.records import RawRecord


class BadInput(EriopError, ValueError):
    """The input cannot be read as messages (exit 2)."""

    exit_code: ClassVar[int] = EXIT_USAGE


def parse_time(text: str) -> datetime:
    """ISO 8601 with a UTC offset (``Z`` allowed), or milliseconds since the epoch."""
    try:
        if text.isdigit():
            return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise BadInput(f"not a time: {text!r} ({exc})") from None
    if value.tzinfo is None:
        raise BadInput(f"{text!r} has no UTC offset (add Z or +hh:mm)")
    return value


def _ms(when: datetime) -> int:
    return round(when.timestamp() * 1000)


def _read(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read {source}: {exc.strerror or exc}") from None


def _headers(pairs: Any, where: str) -> tuple[tuple[str, bytes], ...]:
    if not pairs:
        return ()
    items = pairs.items() if isinstance(pairs, dict) else pairs
    try:
        return tuple((str(k), str(v).encode("utf-8")) for k, v in items)
    except (TypeError, ValueError):
        raise BadInput(f"{where}: headers must be an object or a list of pairs") from None


def _sample_line(topic: str, n: int, text: bytes) -> tuple[RawRecord, datetime]:
    """One line of the samples format (tests/fixtures/samples/*.jsonl)."""
    where = f"line {n}"
    try:
        line = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"{where}: not JSON ({exc})") from None
    if not isinstance(line, dict) or not ("value" in line or "value_b64" in line):
        raise BadInput(f"{where}: expected an object with value or value_b64")
    if line.get("topic", topic) != topic:
        raise BadInput(f"{where} is a message for {line['topic']}, not {topic}")
    try:
        if "value_b64" in line:
            value: bytes | None = base64.b64decode(line["value_b64"], validate=True)
        else:
            value = None if line["value"] is None else str(line["value"]).encode("utf-8")
    except binascii.Error as exc:
        raise BadInput(f"{where}: value_b64 is not base64 ({exc})") from None
    key = line.get("key")
    when = parse_time(str(line["timestamp"])) if line.get("timestamp") else datetime.now(UTC)
    record = RawRecord(
        topic=topic,
        partition=0,
        offset=n - 1,
        timestamp_ms=_ms(when),
        key=None if key is None else str(key).encode("utf-8"),
        value=value,
        headers=_headers(line.get("headers"), where),
    )
    return record, when


def messages(args: argparse.Namespace, data: bytes) -> Iterator[tuple[RawRecord, datetime]]:
    """The records to decode and the pipeline clock for each."""
    topic: str = args.topic
    if args.jsonl:
        lines = [(n, ln) for n, ln in enumerate(data.splitlines(), 1) if ln.strip()]
        for n, text in lines:
            yield _sample_line(topic, n, text)
        return
    when = parse_time(args.time) if args.time else datetime.now(UTC)
    headers = []
    for h in args.header or ():
        name, sep, value = h.partition("=")
        if not sep or not name:
            raise BadInput(f"--header {h!r}: expected NAME=VALUE")
        headers.append((name, value.encode("utf-8")))
    key = None if args.key is None else args.key.encode("utf-8")
    values = [data]
    if args.lines:
        values = [ln.rstrip(b"\r") for ln in data.split(b"\n") if ln.strip()]
    for offset, value in enumerate(values):
        yield RawRecord(topic, 0, offset, _ms(when), key, value, tuple(headers)), when


async def decode_all(settings: Settings, args: argparse.Namespace) -> int:
    data = _read(args.file)
    resources = load_resources(Path(args.resources)) if args.resources else Resources()
    decoder = Decoder(settings, resources)
    show = as_json if args.json else as_text
    dead = total = 0
    for index, (record, now) in enumerate(messages(args, data), 1):
        decoded = await decoder.decode(record, now)
        total += 1
        dead += decoded.outcome == "dead_letter"
        print(show(decoded, index), flush=True)
        if not args.json:
            print()
    if not total:
        raise BadInput("no message in the input")
    if total > 1:
        print(f"{total} messages: {dead} would be dead-lettered", file=sys.stderr)
    return EXIT_FAILURE if dead else EXIT_OK


def run_decode(settings: Settings, args: argparse.Namespace) -> int:
    """Entry point of ``eriop decode``; returns the exit code."""
    if args.topic not in INBOUND_TOPICS:
        print(
            f"eriop decode: {args.topic!r} is not an inbound topic "
            f"(one of {', '.join(INBOUND_TOPICS)})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        return asyncio.run(decode_all(settings, args))
    except ValueError as exc:  # BadInput, or an unusable resources file
        print(f"eriop decode: {exc}", file=sys.stderr)
        return EXIT_USAGE
