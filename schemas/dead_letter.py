"""The dead-letter envelope on ``eriop.dlq`` (docs/formats.md section 7)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class DeadLetter(BaseModel):
    model_config = ConfigDict(frozen=True)

    v: int = 1
    topic: str
    partition: int
    offset: int
    timestamp: str
    key: str | None = None
    key_b64: str | None = None
    value: str | None = None
    value_b64: str | None = None
    value_size: int
    value_sha256: str
    value_truncated: bool | None = None
    stage: str
    error_code: str
    reason: str
    attempts: int = 1
    failed_at: str
