"""``alerts.json``: canonical alerts from integrations that normalise themselves
(docs/formats.md 4). The producer owns ``source`` and ``external_id``, so
deduplication is only as good as its ids.
"""

from __future__ import annotations

from datetime import datetime

import pydantic

from pipeline.decoders.alert_meta import pipeline_metadata
from pipeline.decoders.envelope import (
    DEFAULT_MAX_MESSAGE_BYTES,
    check_no_nul,
    envelope,
    from_pydantic,
    parse_json,
    to_text,
)
from pipeline.errors import DecodeError
from schemas.alert_json import AlertJsonMessage
from schemas.canonical import CanonicalAlert
from schemas.intents import Discard, Intent, StoreAlert
from schemas.records import RawRecord


def decode_alert_json(
    record: RawRecord, now: datetime, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> list[Intent]:
    """One JSON object -> one new alert, or a dead letter for a bad message."""
    value = envelope(record, max_bytes)
    if isinstance(value, Discard):
        return [value]
    message = parse_json(to_text(value))
    if not isinstance(message, dict):
        raise DecodeError("unknown_format", "alerts.json takes exactly one JSON object")
    # The whole message may end up in raw_payload, so NUL is checked everywhere.
    check_no_nul(message, "alerts.json message")
    try:
        parsed = AlertJsonMessage.model_validate(message)
    except pydantic.ValidationError as exc:
        raise from_pydantic(exc, "alerts.json") from None

    received_at = parsed.received_at or record.kafka_time
    occurred_at = parsed.occurred_at or received_at
    # Producer metadata first: the pipeline's own keys must not be forgeable.
    metadata = {
        **(parsed.metadata or {}),
        **pipeline_metadata(record.ingest_ref(), occurred_at, received_at),
    }
    try:
        alert = CanonicalAlert(
            source=parsed.source,
            external_id=parsed.external_id,
            type=parsed.type,
            severity=parsed.severity,
            title=parsed.title,
            description=parsed.description,
            location=parsed.location,
            address=parsed.address,
            raw_payload=parsed.raw_payload if parsed.raw_payload is not None else message,
            metadata=metadata,
            received_at=received_at,
            processed_at=now,
        )
    except pydantic.ValidationError as exc:
        raise from_pydantic(exc, "alerts.json") from None
    return [StoreAlert(alert)]
