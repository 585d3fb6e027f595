"""The volume path: telemetry and GPS batches, decoded without per-event
framework cost and written by COPY, with live state updated after commit."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, Final
from uuid import UUID

from pipeline import metrics
from pipeline.decoders.envelope import iso_utc
from pipeline.decoders.gps.decoder import decode_gps_batch
from pipeline.decoders.telemetry.decoder import decode_telemetry
from pipeline.flows.common import (
    Retrier,
    dead_letter_for,
    decode_each,
    isolating,
    next_offsets,
    publish_dead_letters,
    sort_outcomes,
)
from pipeline.retry import VOLUME_PATH
from pipeline.settings import Settings
from pipeline.sinks.kafka.dlq import DeadLetterPublisher
from pipeline.sinks.postgres.timeseries import TimeseriesStore, WriteResult
from pipeline.sinks.redis.live_state import LiveState
from pipeline.stages.geofence import GeofenceTracker, Move
from pipeline.stages.plausibility import LastFixLoader, PlausibilityTracker, ResourceInfo
from pipeline.stages.resolve import ResourceResolver
from schemas.canonical import GeoPoint, LocationFix, LocationRow, TelemetryRow
from schemas.dead_letter import DeadLetter
from schemas.records import RawRecord

log = logging.getLogger(__name__)

TELEMETRY = "telemetry.raw"
GPS = "gps.raw"
_STREAM = {TELEMETRY: "telemetry", GPS: "gps"}
#: a NamedTuple built as a plain tuple, without its Python-level constructor
_tuple: Final = tuple.__new__


#: the text of the resource and device ids seen lately, by the UUID's int:
#: ``str(UUID)`` is Python code, about 0.8 µs, and the same ids recur in every
#: batch (bounded like the decoders' caches)
_TEXT_LIMIT: Final = 100_000
_uuid_texts: dict[int, str] = {}


def uuid_text(value: UUID) -> str:
    """``str(value)``, remembered."""
    key = value.int
    text = _uuid_texts.get(key)
    if text is None:
        if len(_uuid_texts) >= _TEXT_LIMIT:
            _uuid_texts.clear()
        text = _uuid_texts[key] = str(value)
    return text


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _outcomes(
    groups: Sequence[tuple[RawRecord, Sequence[tuple[Any, ...]]]],
    result: WriteResult,
    key: Callable[[tuple[Any, ...]], tuple[Any, ...]],
) -> list[tuple[RawRecord, str]]:
    """stored when any of a record's rows was new, else duplicate."""
    out = []
    for record, rows in groups:
        if result.keys is None:
            outcome = "stored" if rows else "duplicate"
        else:
            outcome = "stored" if any(key(r) in result.keys for r in rows) else "duplicate"
        out.append((record, outcome))
    return out


class BulkIngestor:
    def __init__(
        self,
        settings: Settings,
        *,
        store: TimeseriesStore,
        dlq: DeadLetterPublisher,
        resolver: ResourceResolver,
        last_fixes: LastFixLoader,
        live: LiveState,
        geofences: GeofenceTracker,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._s = settings
        self._store = store
        self._dlq = dlq
        self._resolver = resolver
        self._loader = last_fixes
        self._tracker = PlausibilityTracker(last_fixes, settings.gps)
        self._live = live
        self._geofences = geofences
        self._clock = clock
        self.retrier = Retrier("bulk", VOLUME_PATH)

    async def handle(self, records: Sequence[RawRecord]) -> None:
        tele = [r for r in records if r.topic == TELEMETRY]
        gps = [r for r in records if r.topic == GPS]
        consumed = {TELEMETRY: len(tele), GPS: len(gps)}
        if len(tele) + len(gps) < len(records):
            consumed = Counter(r.topic for r in records)
        for topic, n in consumed.items():
            if n:
                metrics.RECORDS_CONSUMED.labels(topic).inc(n)
        done: set[tuple[str, int, int]] = set()

        async def telemetry(batch: Sequence[RawRecord]) -> None:
            await self.retrier.run(lambda: self._telemetry(list(batch), done))

        async def gps_fixes(batch: Sequence[RawRecord]) -> None:
            try:
                await self.retrier.run(
                    lambda: self._gps(list(batch), done), on_retry=self._reset_gps_state
                )
            except Exception:
                self._reset_gps_state()
                raise

        if tele:
            metrics.BATCH_SIZE.labels("telemetry").observe(len(tele))
            await isolating(tele, telemetry, self._give_up)
        if gps:
            metrics.BATCH_SIZE.labels("gps").observe(len(gps))
            await isolating(gps, gps_fixes, self._give_up)
        await self._live.sync()

    async def _give_up(self, record: RawRecord, exc: BaseException) -> None:
        """Dead-letter a record that triggers a pipeline bug, and move past it."""
        letter = dead_letter_for(record, exc, self._clock())
        await self.retrier.run(lambda: publish_dead_letters(self._dlq, [(record, letter)]))
        write = (
            self._store.write_telemetry
            if record.topic == TELEMETRY
            else self._store.write_locations
        )
        await self.retrier.run(lambda: write([], next_offsets([record])))

    def _reset_gps_state(self) -> None:
        # the failed batch advanced the trackers; start again from stored state
        self._tracker = PlausibilityTracker(self._loader, self._s.gps)
        self._geofences.reset()

    async def _dead(
        self, items: list[tuple[RawRecord, DeadLetter]], done: set[tuple[str, int, int]]
    ) -> None:
        fresh = [(r, d) for r, d in items if (r.topic, r.partition, r.offset) not in done]
        await publish_dead_letters(self._dlq, fresh)
        done.update((r.topic, r.partition, r.offset) for r, _ in fresh)

    async def _telemetry(self, records: list[RawRecord], done: set[tuple[str, int, int]]) -> None:
        now = self._clock()
        s = self._s
        decoded, dead, skipped = decode_each(
            records, lambda r: decode_telemetry(r, s.telemetry, now, s.max_message_bytes), now
        )
        groups: list[tuple[RawRecord, Sequence[TelemetryRow]]] = [
            (record, res.rows) for record, res in decoded
        ]
        # keyed by the UUID's int: UUID's own __hash__ is Python code, run per row
        newest: dict[int, TelemetryRow] = {}
        for _, rows_of_record in groups:
            for row in rows_of_record:
                seen = newest.get(row.device_id.int)
                if seen is None or seen.time < row.time:
                    newest[row.device_id.int] = row
        last_seen = {r.device_id: (r.device_type, r.time) for r in newest.values()}
        await self._dead(dead, done)
        rows = [row for _, rs in groups for row in rs]
        result = await self._store.write_telemetry(rows, next_offsets(records), last_seen)
        self._account(
            TELEMETRY, _outcomes(groups, result, lambda r: (r[1], r[3], r[0])), skipped, now
        )
        for device_id, (device_type, t) in last_seen.items():
            self._live.device_seen(uuid_text(device_id), t, device_type)

    async def _gps(self, records: list[RawRecord], done: set[tuple[str, int, int]]) -> None:
        now = self._clock()
        s = self._s
        parsed, dead, skipped = sort_outcomes(
            records, decode_gps_batch(records, s.gps, now, s.max_message_bytes), now
        )
        await self._resolver.prefetch({f.resource_ref for _, fixes in parsed for f in fixes})
        resolved: list[tuple[RawRecord, list[tuple[LocationFix, ResourceInfo]]]] = []
        resolve = self._resolver.resolve
        for record, fixes in parsed:
            try:
                resolved.append((record, [(f, resolve(f.resource_ref)) for f in fixes]))
            except Exception as exc:
                dead.append((record, dead_letter_for(record, exc, now)))
        await self._dead(dead, done)

        pairs = [p for _, ps in resolved for p in ps]
        assessed = await self._tracker.assess(pairs)
        rows = list(assessed.rows)
        moves = list(assessed.moves) or [False] * len(rows)
        moved_rows = [row for row, moved in zip(rows, moves, strict=True) if moved]
        # the id as text, once per row: the key of Redis, geofence state and the
        # maps below (a UUID hashes in Python code; a str caches its hash)
        moved_ids = [uuid_text(r.resource_id) for r in moved_rows]
        await self._geofences.prime(sorted(set(moved_ids)))
        tracked = self._geofences.track(
            [
                _tuple(Move, (rid, r.location.lon, r.location.lat, r.time))
                for rid, r in zip(moved_ids, moved_rows, strict=True)
            ]
        )
        newest: dict[str, LocationRow] = {}
        inside_now: dict[str, frozenset[str]] = {}
        events: list[dict[str, Any]] = []
        for rid, row, (evs, inside) in zip(moved_ids, moved_rows, tracked, strict=True):
            if evs:
                row.metadata["geofences"] = {
                    "entered": [e["geofence_id"] for e in evs if e["transition"] == "enter"],
                    "left": [e["geofence_id"] for e in evs if e["transition"] == "leave"],
                }
                events.extend(evs)
            inside_now[rid] = inside
            prev = newest.get(rid)
            if prev is None or prev.time < row.time:
                newest[rid] = row
        # label lookups once per flag and batch, not once per flagged fix
        for flag, n in assessed.flags.items():
            metrics.LOCATION_FLAGS.labels(flag).inc(n)

        # group rows back to their records for accounting
        groups: list[tuple[RawRecord, Sequence[LocationRow]]] = []
        i = 0
        for record, ps in resolved:
            groups.append((record, rows[i : i + len(ps)]))
            i += len(ps)
        move_points = {
            r.resource_id: GeoPoint(r.location.lon, r.location.lat) for r in newest.values()
        }
        result = await self._store.write_locations(rows, next_offsets(records), move_points)
        self._account(GPS, _outcomes(groups, result, lambda r: (r[1], r[0])), skipped, now)
        for rid, row in newest.items():
            self._live.position(rid, _position_state(row, inside_now.get(rid, frozenset())))
        for e in events:
            self._live.geofence_event(e)

    def _account(
        self,
        topic: str,
        outcomes: list[tuple[RawRecord, str]],
        skipped: list[tuple[RawRecord, str]],
        now: datetime,
    ) -> None:
        """Count one topic's outcomes, and observe how long its records took to get here."""
        # label lookups once per batch, not once per record
        for outcome, n in Counter(map(itemgetter(1), outcomes)).items():
            metrics.RECORDS.labels(topic, outcome).inc(n)
        metrics.observe_ages(
            metrics.END_TO_END_LATENCY.labels(_STREAM[topic], "receive"),
            now.timestamp() * 1000,
            [record.timestamp_ms for record, _ in outcomes],
        )
        for _, reason in skipped:
            metrics.RECORDS.labels(topic, "skipped").inc()
            metrics.SKIPPED.labels(topic, reason).inc()


def _position_state(row: LocationRow, inside: frozenset[str]) -> dict[str, Any]:
    return {
        "lat": row.location.lat,
        "lon": row.location.lon,
        "time": iso_utc(row.time),
        "speed": row.speed,
        "heading": row.heading,
        "accuracy": row.accuracy,
        "source": row.source,
        "resource_type": row.resource_type,
        "geofences": ",".join(sorted(inside)),
    }
