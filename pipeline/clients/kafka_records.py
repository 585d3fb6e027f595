"""Consumed records as :class:`RawRecord`, built straight from aiokafka's
record batches.

aiokafka turns every record it reads into a ``ConsumerRecord`` (a dataclass of
eleven fields, with the sizes of key and value measured) in Python, and the
batch consumer then copied it into a ``RawRecord``: about 2.3 µs of CPU per
record, against 0.9 µs for building the ``RawRecord`` from the record batch
itself (tests/unit/test_kafka_records.py). The record batches, their CRC
checks, transactions and control batches stay aiokafka's: only the last step,
one record into one object, is done here.

aiokafka builds the objects in ``PartitionRecords._consumer_record``, and its
fetcher names the class ``PartitionRecords`` at module level. :func:`install`
puts a subclass in its place that builds a ``RawRecord`` for the consumers
whose key deserializer is :func:`raw_records` (those of :func:`make_consumer
<pipeline.clients.kafka.make_consumer>`) and leaves every other consumer's
records as aiokafka makes them. Should an aiokafka release build its records
elsewhere, the override is never called, every consumer gets aiokafka's
records, and the batch consumer converts them as before
(:func:`pipeline.sources.kafka_batch.to_raw`): slower, never wrong.
"""

from __future__ import annotations

from typing import Any, Final

from aiokafka.consumer import fetcher

from schemas.records import RawRecord


def raw_records(key: bytes | None) -> bytes | None:
    """The key deserializer that asks for ``RawRecord`` (it keeps the key as bytes)."""
    return key


_AIOKAFKA: Final = fetcher.PartitionRecords


class _RawPartitionRecords(_AIOKAFKA):  # type: ignore[misc, valid-type]
    """aiokafka's PartitionRecords; a RawRecord per record where the consumer asked."""

    def _consumer_record(self, tp: Any, record: Any) -> object:
        if self._key_deserializer is not raw_records:
            return super()._consumer_record(tp, record)
        headers = record.headers
        # positional: a dataclass takes keywords at twice the cost, once per record
        return RawRecord(
            tp.topic, tp.partition, record.offset, record.timestamp, record.key, record.value,
            tuple(headers) if headers else (),
        )  # fmt: skip


def install() -> None:
    """Let aiokafka's fetcher build RawRecords for the consumers that ask (idempotent)."""
    fetcher.PartitionRecords = _RawPartitionRecords
