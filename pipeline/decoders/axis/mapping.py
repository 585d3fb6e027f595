"""Axis event vocabulary (docs/formats.md 2.1-2.3): topic paths, state items,
truth values and which topics become which alerts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from pipeline.errors import ValidationError
from pipeline.settings import AxisInput

MIC: Final = "axis_mic"
DEVICE: Final = "axis_device"


@dataclass(frozen=True, slots=True)
class AxisMapping:
    """How a mapped topic becomes an alert.

    ``stateless`` topics alert on every true value instead of on rising edges.
    """

    type: str
    severity: int
    source: str
    label: str
    stateless: bool = False


_TAMPER: Final = AxisMapping("tamper", 3, DEVICE, "Camera tampering")
_EXACT: Final[dict[str, AxisMapping]] = {
    "audioclassification/screaming": AxisMapping("scream", 2, MIC, "Screaming detected"),
    "audioclassification/shout": AxisMapping("shout", 3, MIC, "Shouting detected"),
    "audioclassification/glassbreak": AxisMapping("glass_break", 2, MIC, "Glass break detected"),
    "adaptiveaudiodetection/detected": AxisMapping("loud_noise", 3, MIC, "Sudden loud sound"),
    "soundpressurelevel/abovethresholdupper": AxisMapping(
        "loud_noise", 3, MIC, "Sound level above threshold"
    ),
    "audiosource/triggerlevel": AxisMapping("loud_noise", 3, MIC, "Audio level triggered"),
    "videosource/tampering": AxisMapping("tamper", 3, DEVICE, "Camera tampering", stateless=True),
    "device/casing/open": _TAMPER,
    "device/hardwarefailure/storagefailure": AxisMapping("trouble", 4, DEVICE, "Storage failure"),
}
_ACAP_ROOT: Final = "cameraapplicationplatform"
_ACAP_APPS: Final = (
    ("gunshot", AxisMapping("gunshot", 1, MIC, "Gunshot detected")),
    ("aggress", AxisMapping("aggression", 2, MIC, "Aggression detected")),
)
_PHYSICAL_PORT: Final = "device/io/port"
_IO_PATHS: Final = frozenset({_PHYSICAL_PORT, "device/io/virtualinput"})

#: Data items that carry the on/off state, in order of precedence.
STATE_ITEMS: Final = (
    "active", "Detected", "state", "triggered", "disruption", "tampering", "Open", "LogicalState",
)  # fmt: skip
_TRUE: Final = frozenset({"1", "true", "active", "high", "on"})
_FALSE: Final = frozenset({"0", "false", "inactive", "low", "off", ""})

# Namespace prefixes removed at segment starts only: an ACAP app name may
# itself contain "axis" and must survive.
_NS_PREFIXES: Final = ("tnsaxis:", "tns1:", "onvif:", "axis:")
_NS_SEGMENTS: Final = frozenset({"tns:onvif", "tns:axis"})


def strip_topic(topic: str) -> str:
    """``onvif:Device/axis:IO/Port`` -> ``Device/IO/Port``."""
    segments = topic.split("/")
    out: list[str] = []
    for index, raw in enumerate(segments):
        seg = raw
        if seg.lower() in _NS_SEGMENTS and index < len(segments) - 1:
            continue  # "tns:onvif/" and "tns:axis/" span the separator
        stripped = True
        while stripped:
            stripped = False
            for prefix in _NS_PREFIXES:
                if seg.lower().startswith(prefix):
                    seg = seg[len(prefix) :]
                    stripped = True
        if seg:
            out.append(seg)
    return "/".join(out)


def state_item(data: Mapping[str, object]) -> str | None:
    """The data key that carries the state (matched case-insensitively)."""
    by_lower = {key.lower(): key for key in data}
    for name in STATE_ITEMS:
        found = by_lower.get(name.lower())
        if found is not None:
            return found
    return None


def truth(value: object, item: str) -> bool:
    """An Axis state value: ``1 true active high on`` / ``0 false inactive low off ""``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        if value in (0, 1):
            return value == 1
    elif isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ValidationError(
        "invalid_value", f"message.data.{item}: {str(value)[:40]!r} is not a state"
    )


def _port(source: Mapping[str, str]) -> str | None:
    for key, value in source.items():
        if key.lower() == "port":
            return value
    return None


def _normalise_serial(text: str) -> str:
    return text.strip().upper().replace(":", "").replace("-", "")


def _input_override(serial: str, port: str, inputs: Mapping[str, AxisInput]) -> AxisInput | None:
    for key, override in inputs.items():
        key_serial, sep, key_port = key.rpartition(":")
        if sep and _normalise_serial(key_serial) == serial and key_port.strip() == port:
            return override
    return None


def map_topic(
    path: str, serial: str, source: Mapping[str, str], inputs: Mapping[str, AxisInput]
) -> AxisMapping | None:
    """The alert a topic path maps to, or None when it is not an alert topic."""
    lower = path.lower()
    exact = _EXACT.get(lower)
    if exact is not None:
        return exact
    segments = lower.split("/")
    if segments[0] == _ACAP_ROOT and len(segments) >= 2:
        for needle, mapping in _ACAP_APPS:
            if needle in segments[1]:
                return mapping
        return None
    if lower in _IO_PATHS:
        port = _port(source)
        # Overrides name physical inputs; virtual inputs share port numbers.
        if port is not None and lower == _PHYSICAL_PORT:
            override = _input_override(serial, port, inputs)
            if override is not None:
                return AxisMapping(override.type, override.severity, DEVICE, override.label)
        label = f"Input {port} active" if port is not None else "Input active"
        return AxisMapping("io_input", 3, DEVICE, label)
    return None


def normalise_serial(text: str) -> str:
    """Upper case without ``:``/``-``; must then be 1..100 ``[A-Z0-9]``."""
    serial = _normalise_serial(text)
    if not serial:
        raise ValidationError("missing_field", "device serial is empty")
    if len(serial) > 100 or not serial.isascii() or not serial.isalnum():
        raise ValidationError(
            "invalid_value", f"device serial {serial[:40]!r} is not [A-Z0-9]{{1,100}}"
        )
    return serial
