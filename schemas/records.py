"""What the pipeline reads from Kafka, before any decoding."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(slots=True)
class RawRecord:
    """One Kafka record as consumed: the input of every decoder.

    Not frozen, though nothing changes it: one is built per consumed record,
    and a frozen dataclass's constructor costs about three times as much.
    """

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    def header(self, name: str) -> bytes | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None

    @property
    def kafka_time(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp_ms / 1000, tz=UTC)

    @property
    def key_text(self) -> str | None:
        if self.key is None:
            return None
        try:
            return self.key.decode("utf-8")
        except UnicodeDecodeError:
            return None

    def ingest_ref(self) -> dict[str, object]:
        """The ``metadata.ingest`` object that records where a row came from."""
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset}
