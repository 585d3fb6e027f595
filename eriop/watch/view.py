"""How ``eriop watch`` shows an alert: one line, tagged and coloured by severity.

Severity follows docs/formats.md section 0.3: 1 is an immediate threat to life,
5 is information. Every text field is stripped of control characters before it
reaches the terminal, so a device cannot send escape sequences to a console.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

#: (tag, ANSI style) by severity; the tags have one width so the columns line up
SEVERITY: Final[dict[int, tuple[str, str]]] = {
    1: ("SEV1 LIFE ", "\x1b[1;97;41m"),
    2: ("SEV2 CRIME", "\x1b[1;31m"),
    3: ("SEV3 SOON ", "\x1b[1;33m"),
    4: ("SEV4 FAULT", "\x1b[36m"),
    5: ("SEV5 INFO ", "\x1b[2m"),
}
UNKNOWN: Final = ("SEV? ---- ", "\x1b[35m")
RESET: Final = "\x1b[0m"
BOLD: Final = "\x1b[1m"
TITLE_MAX: Final = 80


def clean(value: object, limit: int = 60) -> str:
    """Printable text only, cut to ``limit`` characters."""
    text = "" if value is None else str(value)
    text = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def severity_of(alert: Mapping[str, Any]) -> int | None:
    sev = alert.get("severity")
    return sev if isinstance(sev, int) and sev in SEVERITY else None


def _time(alert: Mapping[str, Any]) -> str:
    raw = alert.get("occurred_at") or alert.get("received_at")
    if not isinstance(raw, str):
        return "time unknown        "
    try:
        t = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return clean(raw, 20)
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _where(alert: Mapping[str, Any]) -> str:
    parts: list[str] = []
    loc = alert.get("location")
    if isinstance(loc, Mapping):
        lat, lon = loc.get("lat"), loc.get("lon")
        if isinstance(lat, int | float) and isinstance(lon, int | float):
            parts.append(f"{lat:.5f},{lon:.5f}")
    address = alert.get("address")
    if isinstance(address, Mapping):
        words = [clean(v, 40) for v in address.values() if isinstance(v, str | int) and v != ""]
        if words:
            parts.append(clean(", ".join(words), 60))
    elif isinstance(address, str) and address:
        parts.append(clean(address))
    return " ".join(parts) if parts else "no location"


class View:
    """Formats alerts for a terminal, with or without ANSI colour."""

    def __init__(self, *, color: bool) -> None:
        self.color = color

    def _paint(self, text: str, style: str) -> str:
        return f"{style}{text}{RESET}" if self.color else text

    def tag(self, severity: int | None) -> str:
        label, style = SEVERITY.get(severity or 0, UNKNOWN)
        return self._paint(f"[{label}]", style)

    def line(self, alert: Mapping[str, Any]) -> str:
        """``[SEV1 LIFE ] 2025-03-14 09:15:03Z  panic  Title  (source)  60.16990,24.93870``"""
        kind = clean(alert.get("type"), 20)
        title = clean(alert.get("title"), TITLE_MAX)
        return (
            f"{self.tag(severity_of(alert))} {_time(alert)}  {kind:<14} "
            f"{self._paint(title, BOLD)}  ({clean(alert.get('source'), 30)})  {_where(alert)}"
        )

    def banner(self, text: str) -> str:
        return self._paint(f"── {text} ──", BOLD)

    def catch_up(self, alerts: Iterable[Mapping[str, Any]]) -> list[str]:
        """Most severe first; oldest first within a severity."""
        groups: dict[int, list[Mapping[str, Any]]] = {}
        for alert in alerts:
            groups.setdefault(severity_of(alert) or 99, []).append(alert)
        lines: list[str] = []
        for sev in sorted(groups):
            label = SEVERITY.get(sev, UNKNOWN)[0].strip()
            lines.append(f"{self.tag(sev if sev in SEVERITY else None)} {label}: "
                         f"{len(groups[sev])}")  # fmt: skip
            lines += [f"  {self.line(a)}" for a in groups[sev]]
        return lines


class Seen:
    """The alert ids already shown, the most recent ``capacity`` of them."""

    def __init__(self, capacity: int = 50_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    def add(self, alert_id: str) -> bool:
        """True when the id is new (and remembers it)."""
        if alert_id in self._ids:
            self._ids.move_to_end(alert_id)
            return False
        self._ids[alert_id] = None
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)
        return True
