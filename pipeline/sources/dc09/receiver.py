"""One frame in, one reply (or none) out: the receiver's promise.

An accepted frame is wrapped in the envelope of docs/formats.md 1.1 b,
produced to ``alerts.alarm`` and acknowledged only once Kafka has
acknowledged it. When Kafka fails or takes longer than ``ack_timeout_s`` the
frame gets no answer at all: the panel retries or fails over to its backup
receiver, and the copies become one alert (docs/formats.md 1.9).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal, Protocol

from pipeline.decoders.alarm.dc09 import frame_text
from pipeline.decoders.alarm.reply import ack, duh, nak
from pipeline.errors import BrokerUnavailable, EriopError
from pipeline.metrics_front_doors import RECEIVER_ACK_LATENCY, RECEIVER_FRAMES, RECEIVER_REPLIES
from pipeline.settings.front_doors import ReceiverSettings
from pipeline.sources.dc09.verdict import Keys, Verdict, Window, judge

log = logging.getLogger(__name__)

Transport = Literal["tcp", "udp"]


class Publisher(Protocol):
    async def publish(self, key: bytes | None, value: bytes) -> None: ...


class Supervisor(Protocol):
    """Line supervision: every authentic frame is a check-in (must not block)."""

    def check_in(self, account: str, line: str | None, at: datetime) -> None: ...


def utcnow() -> datetime:
    return datetime.now(UTC)


def envelope(receiver_id: str, received_at: datetime, raw: bytes, transport: Transport) -> bytes:
    """docs/formats.md 1.1 b: the frame as received, LF and CR included."""
    doc = {
        "receiver": receiver_id,
        "received_at": received_at.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "frame": frame_text(raw),
        "transport": transport,
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class Receiver:
    def __init__(
        self,
        settings: ReceiverSettings,
        *,
        keys: Keys,
        publisher: Publisher,
        supervisor: Supervisor | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._settings = settings
        self._keys = keys
        self._publisher = publisher
        self.supervisor = supervisor
        self._clock = clock
        self._window = Window(settings.timestamp_past_s, settings.timestamp_future_s)

    async def answer(self, raw: bytes, transport: Transport) -> bytes | None:
        """The reply to one frame, or None when it must go unanswered."""
        started = time.perf_counter()
        RECEIVER_FRAMES.labels(transport).inc()
        now = self._clock()
        verdict = judge(raw, self._keys, now, self._window)
        self._check_in(verdict, now)
        if verdict.kind == "DUH":
            return _counted("DUH", verdict.reason, duh(verdict.header, now))
        if verdict.kind == "NAK":
            return _counted("NAK", verdict.reason, nak(now))
        header = verdict.header
        assert header is not None
        key = verdict.account.upper().encode("ascii") if verdict.account else None
        value = envelope(self._settings.receiver_id, now, raw, transport)
        try:
            await asyncio.wait_for(
                self._publisher.publish(key, value), self._settings.ack_timeout_s
            )
        except TimeoutError:
            RECEIVER_REPLIES.labels("none", "kafka_timeout").inc()
            return None
        except EriopError as exc:  # BrokerUnavailable, or Kafka refused the record
            log.debug("frame left unanswered: %s", exc.reason)
            reason = "kafka_unavailable" if isinstance(exc, BrokerUnavailable) else "kafka_rejected"
            RECEIVER_REPLIES.labels("none", reason).inc()
            return None
        reply = ack(header, self._clock(), verdict.key)
        RECEIVER_ACK_LATENCY.observe(time.perf_counter() - started)
        return _counted("ACK", "ok", reply)

    def _check_in(self, verdict: Verdict, now: datetime) -> None:
        header = verdict.header
        if self.supervisor is None or header is None or not verdict.authentic:
            return
        if verdict.account is None:
            return
        try:
            self.supervisor.check_in(verdict.account.upper(), header.line, now)
        except Exception:  # supervision must never cost a panel its answer
            log.exception("line supervision check-in failed")


def _counted(kind: str, reason: str, reply: bytes) -> bytes:
    RECEIVER_REPLIES.labels(kind, reason).inc()
    return reply
