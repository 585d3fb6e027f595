"""Settings of the inbound formats: alarm accounts, Axis, CAP, telemetry, GPS."""

from __future__ import annotations

import json
from typing import Any

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    TypeAdapter,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError

from pipeline.settings.base import Frozen as _Frozen
from schemas.canonical import GeoPoint


class AlarmAccount(_Frozen):
    """``alarm.accounts["<acct>"]`` or ``["L<line>#<acct>"]``."""

    #: AES key of the account's encrypted DC-09 frames (hex of 16, 24 or 32 bytes)
    key: SecretStr | None = None
    #: the site name alerts of this account carry
    site: str | None = None
    #: where the site is, ``[lon, lat]``: the alerts' location
    location: GeoPoint | None = None
    #: the site's address object, copied to the alerts
    address: dict[str, Any] | None = None
    #: line supervision: the longest silence expected from this account, in
    #: seconds (None: ``alarm.checkin_interval_s``; 0: not supervised)
    checkin_interval_s: float | None = Field(default=None, ge=0)

    @field_validator("key")
    @classmethod
    def _key_is_aes(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None:
            return v
        raw = v.get_secret_value()
        try:
            size = len(bytes.fromhex(raw))
        except ValueError:
            raise ValueError("alarm key must be hex") from None
        if size not in (16, 24, 32):
            raise ValueError("alarm key must be 16, 24 or 32 bytes (AES-128/192/256)")
        return v


def read_accounts_file(path: str) -> dict[str, AlarmAccount]:
    """A JSON object of accounts (the shape of ``alarm.accounts``).

    Raises ValueError naming the file and the entries at fault, never a value:
    a rejected value may be a key.
    """
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as exc:
        raise ValueError(f"accounts file {path} cannot be read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"accounts file {path} is not JSON (line {exc.lineno})") from None
    try:
        return _ACCOUNTS.validate_python(data)
    except PydanticValidationError as exc:
        where = sorted({".".join(map(str, e["loc"])) for e in exc.errors(include_input=False)})
        entries = ", ".join(where)
        raise ValueError(f"accounts file {path} has invalid entries at {entries}") from None


_ACCOUNTS: TypeAdapter[dict[str, AlarmAccount]] = TypeAdapter(dict[str, AlarmAccount])


class AlarmSettings(_Frozen):
    #: alarm accounts by ``"<acct>"`` or ``"L<line>#<acct>"`` (JSON): key, site,
    #: location, address, check-in interval
    accounts: dict[str, AlarmAccount] = Field(default_factory=dict)
    #: a JSON file of more accounts and keys (the shape of ``accounts``), whose
    #: entries win; read at start, and again by the DC-09 receiver on SIGHUP and
    #: whenever the file changes
    accounts_file: str | None = None
    _env_accounts: dict[str, AlarmAccount] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _merge_accounts_file(self) -> AlarmSettings:
        self._env_accounts = dict(self.accounts)
        if self.accounts_file is not None:
            merged = {**self.accounts, **read_accounts_file(self.accounts_file)}
            object.__setattr__(self, "accounts", merged)  # still frozen to everyone else
        return self

    @property
    def env_accounts(self) -> dict[str, AlarmAccount]:
        """``accounts`` as the environment gave them, without the file's."""
        return self._env_accounts

    #: openings and closings (arm/disarm) become alerts, not only activity rows
    open_close_as_alerts: bool = False
    #: line supervision (docs/operations.md): an account silent for its interval
    #: plus the grace is in communication failure; 0 turns supervision off
    checkin_interval_s: float = Field(default=1800.0, ge=0)
    #: how long past its interval an account may stay silent before its line fails
    checkin_grace_s: float = Field(default=120.0, ge=0)
    #: how often check-ins are written and deadlines checked
    supervision_tick_s: float = Field(default=1.0, gt=0)


class AxisInput(_Frozen):
    #: the alert type an I/O port's activation becomes
    type: str
    #: its severity (1 most severe .. 5)
    severity: int = Field(ge=1, le=5)
    #: its title
    label: str


class AxisSettings(_Frozen):
    #: Axis events older than this (device clock) are discarded as stale
    max_event_age_s: float = 600.0
    #: a rising edge this soon after a restore re-arms the same alert (no new one)
    rearm_window_s: float = 10.0
    #: what a device's physical I/O port means, by ``"<serial>:<port>"`` (JSON):
    #: type, severity, label
    inputs: dict[str, AxisInput] = Field(default_factory=dict)
    #: how long device-to-resource lookups are remembered
    resource_cache_s: int = 300


class CapSettings(_Frozen):
    #: preferred CAP ``<info>`` languages, in order
    languages: tuple[str, ...] = ("en-US", "en")
    #: CAP messages with status Exercise become alerts too
    accept_exercise: bool = False


class TelemetrySettings(_Frozen):
    #: older measurements are dead-lettered (``timestamp_out_of_window``)
    max_age_s: float = 7 * 86400.0
    #: measurements this far ahead of the pipeline clock are dead-lettered
    max_future_s: float = 300.0


class GpsSettings(_Frozen):
    #: older fixes are dead-lettered (``timestamp_out_of_window``)
    max_age_s: float = 7 * 86400.0
    #: fixes this far ahead of the pipeline clock are dead-lettered
    max_future_s: float = 30.0
    #: fixes less accurate than this are stored flagged ``low_accuracy``
    max_accuracy_m: float = 100.0
    #: NMEA fixes with a larger HDOP are flagged ``low_accuracy``
    max_hdop: float = 5.0
    #: NMEA fixes from fewer satellites are flagged ``low_accuracy``
    min_satellites: int = 4
    #: a person moving faster than this between fixes is a ``teleport``
    max_speed_personnel_mps: float = 12.0
    #: a vehicle moving faster than this between fixes is a ``teleport``
    max_speed_vehicle_mps: float = 70.0
    #: at most one eriop.locations message per resource per this many seconds
    publish_interval_s: float = 1.0
