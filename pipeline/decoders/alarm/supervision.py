"""Line supervision messages on ``alerts.alarm`` (docs/formats.md 1.12).

A DC-09 receiver that sees an account miss its check-in window produces one
envelope with a ``supervision`` object instead of a ``frame``; when traffic
resumes, another with state ``restored``. Both forms are built and read here,
so the receiver and the worker share one definition:

    {"receiver": "rcv-north-1", "received_at": "2025-03-14T10:02:00Z",
     "supervision": {"account": "4711", "line": "3", "state": "failed",
                     "since": "2025-03-14T09:30:00.250Z", "interval_s": 1800}}

``since`` is the account's last check-in before the silence. It names the
outage: every receiver (and every repeat) reports the same outage with the same
``since``, so the failure alert's ``external_id`` deduplicates them to one.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from pipeline.decoders.alarm.build import DEVICE_TYPE, SOURCE
from pipeline.decoders.alarm.codes import RESTORE
from pipeline.decoders.alarm.fields import Place, place, received_at_field, receiver_field
from pipeline.decoders.envelope import (
    check_no_nul,
    cut,
    device_uuid,
    external_id,
    iso_utc,
    parse_timestamp,
)
from pipeline.errors import ValidationError
from pipeline.settings import AlarmAccount, AlarmSettings
from schemas.canonical import CanonicalAlert, TelemetryRow
from schemas.intents import Intent, PatchAlert, StoreAlert, StoreTelemetry
from schemas.records import RawRecord

SUPERVISION_KEY: Final = "supervision"
#: the alert a communication failure becomes (docs/formats.md 0.3)
ALERT_TYPE: Final = "supervisory"
ALERT_SEVERITY: Final = 3
STATES: Final = ("failed", "restored")

_ACCOUNT_RE: Final = re.compile(r"[0-9A-Fa-f]{3,16}")
_LINE_RE: Final = re.compile(r"[0-9A-Fa-f]{1,6}")

State = Literal["failed", "restored"]


@dataclass(frozen=True, slots=True)
class LineChange:
    """An account entering (``failed``) or leaving (``restored``) communication failure."""

    account: str
    line: str | None
    state: State
    #: the last check-in before the silence; names the outage
    since: datetime
    #: when the failure was found, or the check-in that ended it
    at: datetime
    #: the interval the account was expected to keep, when known
    interval_s: float | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "account": self.account,
            "line": self.line,
            "state": self.state,
            "since": iso_utc(self.since),
        }
        if self.interval_s is not None:
            out["interval_s"] = self.interval_s
        return out


def checkin_intervals(accounts: Mapping[str, AlarmAccount]) -> dict[str, float]:
    """Per-account interval overrides (upper-case account to seconds); an
    ``L<line>#<acct>`` entry counts for the account, the smallest one wins."""
    out: dict[str, float] = {}
    for key, entry in accounts.items():
        if entry.checkin_interval_s is not None:
            account = key.upper().rpartition("#")[2]
            out[account] = min(out.get(account, math.inf), entry.checkin_interval_s)
    return out


def outage_id(account: str, since: datetime) -> str:
    """The failure alert's ``external_id``: one per account and outage."""
    return external_id(f"line:{account.upper()}:{iso_utc(since)}")


def line_change_envelope(change: LineChange, receiver: str) -> bytes:
    """The ``alerts.alarm`` value a receiver produces for one change."""
    value = {
        "receiver": receiver,
        "received_at": iso_utc(change.at),
        SUPERVISION_KEY: change.as_json(),
    }
    return json.dumps(value, separators=(",", ":")).encode()


def read_change(obj: dict[str, Any]) -> LineChange:
    """The ``supervision`` object of an envelope, checked field by field."""
    body = obj.get(SUPERVISION_KEY)
    if not isinstance(body, dict):
        raise ValidationError("invalid_value", "envelope.supervision must be an object")
    account = body.get("account")
    if account is None or account == "":
        raise ValidationError("missing_field", "supervision.account is required")
    if not isinstance(account, str) or not _ACCOUNT_RE.fullmatch(account):
        raise ValidationError("invalid_value", "supervision.account must be 3-16 hex digits")
    line = body.get("line")
    if line is not None and (not isinstance(line, str) or not _LINE_RE.fullmatch(line)):
        raise ValidationError("invalid_value", "supervision.line must be null or 1-6 hex digits")
    state = body.get("state")
    if state is None:
        raise ValidationError("missing_field", "supervision.state is required")
    if state not in STATES:
        raise ValidationError("invalid_value", "supervision.state must be failed or restored")
    since = body.get("since")
    if since is None or since == "":
        raise ValidationError("missing_field", "supervision.since is required")
    interval = body.get("interval_s")
    if interval is not None:
        if isinstance(interval, bool) or not isinstance(interval, int | float):
            raise ValidationError("invalid_value", "supervision.interval_s must be a number")
        if not math.isfinite(interval) or interval < 0:
            raise ValidationError("value_out_of_range", "supervision.interval_s must be >= 0")
    return LineChange(
        account=account.upper(),
        line=line,
        state=state,
        since=parse_timestamp(since, "supervision.since"),
        at=received_at_field(obj),
        interval_s=None if interval is None else float(interval),
    )


def supervision_intents(
    obj: dict[str, Any], record: RawRecord, settings: AlarmSettings, now: datetime
) -> list[Intent]:
    """A failure becomes one alert; a restore patches it (docs/formats.md 1.8)."""
    receiver = receiver_field(obj)
    change = read_change(obj)
    check_no_nul(obj, "alarm envelope")
    where = place(settings, change.line, change.account)
    match_key = f"{where.site}|line:{change.account}"
    raw = {**obj, "format": "supervision", "receiver": receiver}
    if change.state == "failed":
        return [StoreAlert(_alert(change, where, receiver, raw, record, now, match_key))]
    restore_id = external_id(f"line:{change.account}:{iso_utc(change.since)}:restored")
    row = _unmatched_restore(change, where, receiver, restore_id)
    return [
        PatchAlert(
            kind="restore",
            source=SOURCE,
            metadata_patch={
                "restored_at": iso_utc(change.at),
                "restore_external_id": restore_id,
            },
            match_key=match_key,
            on_miss=(StoreTelemetry((row,)),),
        )
    ]


def _alert(
    change: LineChange,
    where: Place,
    receiver: str,
    raw: dict[str, Any],
    record: RawRecord,
    now: datetime,
    match_key: str,
) -> CanonicalAlert:
    title = f"Communication failure - account {where.site}"
    if change.line is not None:
        title += f", line {change.line}"
    text = f"No event or link test from account {change.account} since {iso_utc(change.since)}"
    if change.interval_s is not None:
        text += f" (expected at least every {change.interval_s:g} s)"
    return CanonicalAlert(
        source=SOURCE,
        external_id=outage_id(change.account, change.since),
        type=ALERT_TYPE,
        severity=ALERT_SEVERITY,
        status="new",
        title=cut(title, 255),
        description=text + ".",
        location=where.location,
        address=where.address,
        raw_payload=raw,
        metadata={
            "occurred_at": iso_utc(change.at),
            "ingest": record.ingest_ref(),
            "site": where.site,
            "account": change.account,
            "receiver": receiver,
            "supervision": change.as_json(),
            "match_key": match_key,
        },
        received_at=change.at,
        processed_at=now,
    )


def _unmatched_restore(
    change: LineChange, where: Place, receiver: str, restore_id: str
) -> TelemetryRow:
    """With no open failure alert to patch, the restore is kept as activity."""
    ref = "alarm:" + where.site
    return TelemetryRow(
        time=change.at,
        device_id=device_uuid(ref)[0],
        device_type=DEVICE_TYPE,
        metric_name=RESTORE,
        metric_value=None,
        metric_text="line:restored",
        location=where.location,
        metadata={
            "external_id": restore_id,
            "receiver": receiver,
            "device_ref": ref,
            "unmatched": True,
            "supervision": change.as_json(),
        },
    )
