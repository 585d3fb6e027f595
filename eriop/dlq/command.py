"""``eriop dlq``: inspect dead letters and send them back once the cause is fixed.

``eriop dlq list`` reads ``eriop.dlq`` from the beginning and prints the dead letters
grouped by error code: how many, at which stage, from which topics, and a few
sample reasons with the original topic, partition and offset. A record that was
dead-lettered more than once (the worker stopped after publishing its dead letter
and before storing its offset, then met it again) is counted once, by its first
dead letter, and the repeats folded are reported.

``eriop dlq replay`` sends the selected dead letters' original bytes, key and headers
back to their original topic, marked with ``eriop-replayed-from: <partition>:<offset>``
(the original's position in that topic), each original record once however many
times it was dead-lettered. Every replay sends again: the pipeline's
idempotency keys keep a repeated replay from storing anything twice. Dead letters
whose value was cut (``oversize``) cannot be replayed and are reported as skipped.

Results go to stdout, progress and errors to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from aiokafka.errors import KafkaError

from eriop.dlq.read import Letter, original_of, scan
from pipeline.clients.kafka import INBOUND_TOPICS, OUT_DLQ, make_producer
from pipeline.errors import BrokerUnavailable, EriopError
from pipeline.settings import Settings

UNREADABLE = "(unreadable)"
SEND_WINDOW = 500


def _out(line: str = "") -> None:
    print(line, flush=True)


def _err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _reading(read: int, total: int) -> None:
    _err(f"reading {OUT_DLQ}: {read:,} of {total:,} dead letters")


@dataclass
class Group:
    """Dead letters sharing an error code."""

    error_code: str
    samples_kept: int
    count: int = 0
    stages: Counter[str] = field(default_factory=Counter)
    topics: Counter[str] = field(default_factory=Counter)
    samples: deque[Letter] = field(init=False)

    def __post_init__(self) -> None:
        self.samples = deque(maxlen=max(self.samples_kept, 0))

    def add(self, letter: Letter) -> None:
        self.count += 1
        e = letter.envelope
        self.stages[e.stage if e else "-"] += 1
        self.topics[e.topic if e else OUT_DLQ] += 1
        self.samples.append(letter)


class Origins:
    """Which original records were met already; counts the repeats folded."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, int, int]] = set()
        self.folded = 0

    def first(self, letter: Letter) -> bool:
        """True for the first dead letter of its original record."""
        origin = letter.origin
        if origin in self._seen:
            self.folded += 1
            return False
        self._seen.add(origin)
        return True


def _repeats(n: int) -> str:
    if not n:
        return "no repeats"
    return f"{n} repeat{'s' * (n != 1)} of an already counted record folded"


def _code(letter: Letter) -> str:
    return letter.envelope.error_code if letter.envelope else UNREADABLE


def _selected(letter: Letter, error_code: str | None, topic: str | None) -> bool:
    if error_code is not None and _code(letter) != error_code:
        return False
    return topic is None or (letter.envelope is not None and letter.envelope.topic == topic)


def _tally(counter: Counter[str]) -> str:
    return ", ".join(f"{name} ({n})" for name, n in counter.most_common())


def _show_key(key: bytes | None) -> str:
    if key is None:
        return "-"
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return f"0x{key.hex()}"
    return text if text.isprintable() and text else f"0x{key.hex()}"


def _sample_line(letter: Letter) -> str:
    e = letter.envelope
    if e is None:
        return f"    {letter.where}  {letter.problem}"
    return f"    {letter.where}  failed {e.failed_at}  {e.reason}"


def _failed_at(letter: Letter) -> str:
    return letter.envelope.failed_at if letter.envelope else ""


async def list_letters(settings: Settings, samples: int, topic: str | None) -> int:
    # the earliest dead letter of each original record stands for it: repeats may
    # sit on other partitions of the topic, read in no particular order
    first: dict[tuple[str, int, int], Letter] = {}
    folded = 0
    seen = 0
    async for letter in scan(settings, progress=_reading):
        seen += 1
        if not _selected(letter, None, topic):
            continue
        known = first.get(letter.origin)
        if known is not None:
            folded += 1
            if _failed_at(known) <= _failed_at(letter):
                continue
        first[letter.origin] = letter
    groups: dict[str, Group] = {}
    for letter in sorted(first.values(), key=_failed_at):
        code = _code(letter)
        groups.setdefault(code, Group(code, samples)).add(letter)
    matched = sum(g.count for g in groups.values())
    where = f" from {topic}" if topic else ""
    if not matched:
        _out(f"{OUT_DLQ}: no dead letters{where} ({seen} in the topic)")
        return 0
    _out(
        f"{OUT_DLQ}: {matched} dead letters{where} in {len(groups)} error codes, "
        f"once per original record ({_repeats(folded)})"
    )
    for group in sorted(groups.values(), key=lambda g: (-g.count, g.error_code)):
        _out()
        _out(
            f"{group.error_code}: {group.count}  stage {_tally(group.stages)}  "
            f"topics {_tally(group.topics)}"
        )
        for letter in group.samples:
            _out(_sample_line(letter))
    return 0


@dataclass
class ReplayTally:
    sent: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    origins: Origins = field(default_factory=Origins)


async def replay_letters(
    settings: Settings, error_code: str | None, topic: str | None, dry_run: bool
) -> int:
    tally = ReplayTally()
    producer = None if dry_run else make_producer(settings)
    verb = "would replay" if dry_run else "replay"
    try:
        if producer is not None:
            await producer.start()
        pending: list[asyncio.Future[object]] = []
        last_report = time.monotonic()
        async for letter in scan(settings, progress=_reading):
            if not _selected(letter, error_code, topic) or not tally.origins.first(letter):
                continue
            try:
                original = original_of(letter)
                if original.topic not in INBOUND_TOPICS:
                    raise ValueError(f"{original.topic} is not an inbound topic")
            except ValueError as exc:
                tally.skipped[_code(letter)] += 1
                _out(f"skip {letter.where} ({_code(letter)}): {exc}")
                continue
            _out(
                f"{verb} {letter.where} ({_code(letter)}) -> {original.topic} "
                f"key {_show_key(original.key)} {len(original.value)} bytes"
            )
            tally.sent[original.topic] += 1
            if producer is None:
                continue
            pending.append(
                await producer.send(
                    original.topic, original.value, key=original.key, headers=original.headers
                )
            )
            if len(pending) >= SEND_WINDOW:
                await asyncio.gather(*pending)
                pending.clear()
            if time.monotonic() - last_report >= 2.0:
                _err(f"replayed {sum(tally.sent.values()):,} so far")
                last_report = time.monotonic()
        await asyncio.gather(*pending)
    except KafkaError as exc:
        raise BrokerUnavailable(f"sending replayed records failed: {exc}") from exc
    finally:
        if producer is not None:
            await producer.stop()
    _summary(tally, dry_run)
    return 0


def _summary(tally: ReplayTally, dry_run: bool) -> None:
    total = sum(tally.sent.values())
    done = "would replay" if dry_run else "replayed"
    line = f"{done} {total} dead letters"
    if total:
        line += f" to {_tally(tally.sent)}"
    skipped = sum(tally.skipped.values())
    if skipped:
        line += f"; skipped {skipped} that cannot be replayed ({_tally(tally.skipped)})"
    if tally.origins.folded:
        line += f"; {_repeats(tally.origins.folded)}"
    if dry_run:
        line += "; nothing was sent (--dry-run)"
    _out(line)


async def run_dlq(settings: Settings, args: argparse.Namespace) -> int:
    """Entry point of ``eriop dlq list|replay``; returns the exit code."""
    try:
        if args.dlq_command == "list":
            return await list_letters(settings, int(args.samples), args.topic)
        return await replay_letters(settings, args.error_code, args.topic, bool(args.dry_run))
    except EriopError as exc:
        _err(f"eriop dlq: {exc.reason}")
        return exc.exit_code
