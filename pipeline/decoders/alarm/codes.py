"""Alarm event codes: what becomes an alert, with which type and severity, what
is account activity, and which alarm a restore ends (docs/formats.md 1.7-1.8).

Contact ID codes are the three digits XYZ; SIA codes are two letters whose
first names the family (B burglary, F fire, ...) and whose second the class
(A alarm, T trouble, S supervisory, H/R/J restore, B/U bypass, X test).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class AlertClass:
    """An event that creates an alert; ``unmapped`` when only its range decided."""

    type: str
    severity: int
    unmapped: bool = False


OPEN_CLOSE: Final = "alarm.open_close"
BYPASS: Final = "alarm.bypass"
TEST: Final = "alarm.test"
EVENT: Final = "alarm.event"
RESTORE: Final = "alarm.restore"
TEXT: Final = "alarm.text"
HEARTBEAT: Final = "alarm.heartbeat"

#: an alert class, or the telemetry metric of an account-activity row
Classification = AlertClass | str


def _table(groups: Iterable[tuple[str, int, Iterable[int]]]) -> dict[int, AlertClass]:
    return {code: AlertClass(t, sev) for t, sev, codes in groups for code in codes}


_CID_ALERTS: Final = _table(
    [
        ("medical", 1, (100, 101)),
        ("fire", 1, (110, 111, 112, 114, 115, 116, 117)),
        # A flowing sprinkler means fire, whatever pysiaalarm's WA suggests.
        ("fire", 1, (113,)),
        ("fire", 2, (118,)),
        ("panic", 1, (120, 122, 123)),
        ("duress", 1, (121, 124, 125)),
        ("intrusion", 2, (*range(130, 137), 138, 139, 140, 146)),
        ("tamper", 3, (137, 144, 145)),
        ("other", 2, (150,)),
        ("gas", 1, (151, 162)),
        ("water", 3, (154,)),
        ("temperature", 3, (158, 159)),
        ("supervisory", 3, range(200, 300)),
        ("trouble", 4, range(300, 400)),
        ("trouble", 3, (373,)),
        ("trouble", 4, (608,)),
        # Inactivity can mean a person who needs help.
        ("supervisory", 3, (654,)),
    ]
)

_SIA_ALERTS: Final = {
    **dict.fromkeys(("FA", "SA", "KA"), AlertClass("fire", 1)),
    **dict.fromkeys(("MA", "QA"), AlertClass("medical", 1)),
    "PA": AlertClass("panic", 1),
    "HA": AlertClass("duress", 1),
    "GA": AlertClass("gas", 1),
    "BV": AlertClass("intrusion", 1),
    "BA": AlertClass("intrusion", 2),
    "EA": AlertClass("intrusion", 3),
    **dict.fromkeys(("TA", "JA"), AlertClass("tamper", 3)),
    "UA": AlertClass("other", 2),
    "WA": AlertClass("water", 3),
    "ZA": AlertClass("temperature", 3),
    **dict.fromkeys(("FS", "NA"), AlertClass("supervisory", 3)),
    "FT": AlertClass("trouble", 3),
    # YC is the communication-fail trouble that YK restores (CID 3xx equivalent).
    **dict.fromkeys(("YM", "YC"), AlertClass("trouble", 4)),
}

_SIA_TESTS: Final = frozenset({"RP", "RX", "TX"})
#: families whose H/R codes restore the A code and whose J codes restore the T code
RESTORE_FAMILIES: Final = "BFGHKMPQSTUWZ"
#: restores outside the family rule; YR ends either battery condition, YT first
SIA_RESTORES: Final[dict[str, tuple[str, ...]]] = {
    "AR": ("AT",),
    "YR": ("YT", "YM"),
    "YK": ("YC",),
    "LR": ("LT",),
    "NR": ("NT",),
    "XR": ("XT",),
    "ER": ("ET",),
}


def cid_class(code: str) -> Classification:
    """Classification of a Contact ID event code reported with qualifier 1 or 6."""
    if not code.isdigit():
        return EVENT
    n = int(code)
    if n in _CID_ALERTS:
        return _CID_ALERTS[n]
    if 100 <= n <= 199:
        return AlertClass("other", 2, unmapped=True)
    if 400 <= n <= 499:
        return OPEN_CLOSE
    if 500 <= n <= 599:
        return BYPASS
    if 600 <= n <= 699:
        return TEST
    return EVENT


def cid_is_user_code(code: str) -> bool:
    """4xx codes carry a user number where others carry a zone."""
    return code.startswith("4")


def sia_restore_targets(code: str) -> tuple[str, ...]:
    """The alarm codes a SIA restore code ends, newest match first; () if none."""
    if code in SIA_RESTORES:
        return SIA_RESTORES[code]
    family, cls = code[0], code[1]
    if family in RESTORE_FAMILIES:
        if cls in "HR":
            return (family + "A",)
        if cls == "J":
            return (family + "T",)
    return ()


def sia_is_user_code(code: str) -> bool:
    """Openings and closings number the user, other codes the zone."""
    return code[0] in "OC"


def sia_class(code: str) -> Classification:
    """Classification of a SIA code that is not a restore."""
    cls = code[1]
    if sia_is_user_code(code):
        return OPEN_CLOSE
    if code in _SIA_ALERTS:
        return _SIA_ALERTS[code]
    if code in _SIA_TESTS or cls == "X":
        return TEST
    if cls in "BU":
        return BYPASS
    if cls == "A":
        return AlertClass("other", 2, unmapped=True)
    if cls == "S":
        return AlertClass("supervisory", 3)
    if cls == "T":
        return AlertClass("trouble", 4)
    return EVENT


_CID_TEXT: Final = {
    100: "Medical",
    101: "Personal emergency",
    110: "Fire",
    111: "Smoke",
    112: "Combustion",
    113: "Water flow",
    114: "Heat",
    115: "Pull station",
    116: "Duct",
    117: "Flame",
    118: "Fire near alarm",
    120: "Panic",
    121: "Duress",
    122: "Silent panic",
    123: "Audible panic",
    124: "Duress, access granted",
    125: "Duress, egress granted",
    130: "Burglary",
    131: "Perimeter",
    132: "Interior",
    133: "24-hour burglary (safe)",
    134: "Entry/exit",
    135: "Day/night",
    136: "Outdoor",
    137: "Tamper",
    138: "Burglary near alarm",
    139: "Intrusion verifier",
    140: "General alarm",
    144: "Sensor tamper",
    145: "Expansion module tamper",
    146: "Silent burglary",
    150: "24-hour non-burglary",
    151: "Gas detected",
    154: "Water leakage",
    158: "High temperature",
    159: "Low temperature",
    162: "Carbon monoxide detected",
    200: "Fire supervisory",
    300: "System trouble",
    301: "AC loss",
    302: "Low system battery",
    373: "Fire trouble",
    401: "Open/close by user",
    602: "Periodic test report",
    608: "Periodic test, trouble present",
    654: "System inactivity",
}

_SIA_TEXT: Final = {
    "FA": "Fire alarm",
    "SA": "Sprinkler alarm",
    "KA": "Heat alarm",
    "MA": "Medical alarm",
    "QA": "Emergency alarm",
    "PA": "Panic alarm",
    "HA": "Holdup alarm",
    "GA": "Gas alarm",
    "BV": "Burglary verified",
    "BA": "Burglary alarm",
    "EA": "Exit alarm",
    "TA": "Tamper alarm",
    "JA": "User code tamper",
    "UA": "Untyped zone alarm",
    "WA": "Water alarm",
    "ZA": "Freeze alarm",
    "FS": "Fire supervisory",
    "NA": "No activity",
    "FT": "Fire trouble",
    "YM": "System battery missing",
    "YC": "Communications fail",
    "YT": "System battery trouble",
    "AT": "AC trouble",
    "LT": "Phone line trouble",
    "XT": "Transmitter battery trouble",
    "ET": "Expansion trouble",
    "OP": "Opening report",
    "CL": "Closing report",
    "RP": "Automatic test",
    "RX": "Manual test",
    "TX": "Test report",
}


def cid_text(code: str) -> str:
    """Human name of a Contact ID event code."""
    name = _CID_TEXT.get(int(code)) if code.isdigit() else None
    return f"Contact ID {code}: {name}" if name else f"Contact ID event {code}"


def sia_text(code: str) -> str:
    """Human name of a SIA event code."""
    name = _SIA_TEXT.get(code)
    return f"SIA {code}: {name}" if name else f"SIA event {code}"
