"""Metadata keys every alert topic sets the same way (docs/formats.md 0.1, 0.2)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from pipeline.decoders.envelope import iso_utc

#: A source clock this far ahead of ``received_at`` is recorded, never rejected.
CLOCK_SKEW_LIMIT_S: Final = 300.0
MAX_DESCRIPTION: Final = 65_536
MAX_TITLE: Final = 255


def pipeline_metadata(
    ingest: Mapping[str, object],
    occurred_at: datetime,
    received_at: datetime,
    source_time: datetime | None = None,
) -> dict[str, Any]:
    """``occurred_at``, ``ingest`` and, when the source clock runs ahead,
    ``clock_skew_s``.

    ``source_time`` is the timestamp the source's own clock wrote when that is
    not ``occurred_at`` (a CAP onset may lie in the future on purpose).
    """
    meta: dict[str, Any] = {"occurred_at": iso_utc(occurred_at), "ingest": dict(ingest)}
    skew = ((source_time or occurred_at) - received_at).total_seconds()
    if skew > CLOCK_SKEW_LIMIT_S:
        meta["clock_skew_s"] = round(skew, 3)
    return meta
