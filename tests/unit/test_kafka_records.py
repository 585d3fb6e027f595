"""RawRecords straight from aiokafka's record batches: the same records as
aiokafka's own, for the consumers that ask, and aiokafka's records for the rest.

The batches are built by aiokafka's own record builder, so they are the bytes a
broker sends; the worker tests read them from a real broker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiokafka.consumer import fetcher
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import ConsumerRecord, TopicPartition

from pipeline.clients import kafka_records
from pipeline.clients.kafka_records import raw_records
from pipeline.sources.kafka_batch import to_raw
from schemas.records import RawRecord

TP = TopicPartition("gps.raw", 3)
READ_COMMITTED = 1


def _batch(first_offset: int, records: list[tuple[bytes | None, bytes | None, list[Any]]]) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=0, is_transactional=0, producer_id=-1,
        producer_epoch=-1, base_sequence=-1, batch_size=1 << 24,
    )  # fmt: skip
    for i, (key, value, headers) in enumerate(records):
        builder.append(i, timestamp=1_765_000_000_000 + i, key=key, value=value, headers=headers)
    data = bytearray(builder.build())
    # the batch's base offset (its first 8 bytes), as a broker would place it
    data[:8] = first_offset.to_bytes(8, "big")
    return bytes(data)


RECORDS: list[tuple[bytes | None, bytes | None, list[Any]]] = [
    (b"VEH-1", b'{"lat": 60.1}', []),
    (None, b"{}", [("eriop-source", b"gw-7"), ("trace", b"")]),
    (b"VEH-2", None, []),
    (b"", b"", [("k", b"v")]),
]
DATA = _batch(100, RECORDS) + _batch(104, RECORDS[:2])


def _read(
    key_deserializer: Callable[[bytes | None], Any] | None, fetch_offset: int = 0
) -> list[Any]:
    kafka_records.install()
    records = fetcher.PartitionRecords(
        TP, MemoryRecords(DATA), [], fetch_offset, key_deserializer, None, True, READ_COMMITTED
    )
    return list(records)


def test_raw_records_are_aiokafkas_records_as_the_batch_consumer_took_them() -> None:
    ours = _read(raw_records)
    theirs = _read(None)
    assert all(type(r) is RawRecord for r in ours)
    assert all(type(r) is ConsumerRecord for r in theirs)
    assert ours == [to_raw(r) for r in theirs]
    assert [r.offset for r in ours] == [100, 101, 102, 103, 104, 105]
    assert ours[1].key is None
    assert ours[1].headers == (("eriop-source", b"gw-7"), ("trace", b""))
    assert ours[2].value is None
    assert ours[3].headers == (("k", b"v"),)
    assert ours[3].key == b""
    assert (ours[0].topic, ours[0].partition, ours[0].timestamp_ms) == (
        "gps.raw", 3, 1_765_000_000_000,
    )  # fmt: skip
    # the batch consumer takes them as they are
    assert all(to_raw(r) is r for r in ours)


def test_records_before_the_fetch_position_are_skipped_as_aiokafka_skips_them() -> None:
    assert [r.offset for r in _read(raw_records, 102)] == [102, 103, 104, 105]


def test_other_consumers_keep_aiokafkas_records_and_deserializers() -> None:
    theirs = _read(lambda key: None if key is None else key.decode().lower())
    assert all(type(r) is ConsumerRecord for r in theirs)
    assert [r.key for r in theirs] == ["veh-1", None, "veh-2", "", "veh-1", None]
    assert theirs[0].serialized_key_size == 5
    assert theirs[2].serialized_value_size == -1


def test_install_is_idempotent_and_keeps_aiokafkas_class_underneath() -> None:
    kafka_records.install()
    kafka_records.install()
    assert fetcher.PartitionRecords is kafka_records._RawPartitionRecords
    assert fetcher.PartitionRecords.__mro__[1] is kafka_records._AIOKAFKA


async def test_make_consumer_asks_for_raw_records() -> None:
    from pipeline.clients.kafka import make_consumer
    from pipeline.environment import load_settings

    consumer = make_consumer(load_settings({}), "g")
    assert consumer._key_deserializer is raw_records
    assert fetcher.PartitionRecords is kafka_records._RawPartitionRecords
