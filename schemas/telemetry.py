"""Inbound formats of ``telemetry.raw`` (docs/formats.md 5).

Two formats share the topic: SenML packs (RFC 8428, JSON) and the simple JSON
format. Both are checked by hand in :mod:`pipeline.decoders.telemetry.decoder` because
this is the volume path; the shapes and limits live here.
"""

from __future__ import annotations

import re
from typing import Any, Final, TypedDict

#: SenML labels of RFC 8428 section 4.2/4.3 that the decoder understands.
SENML_BASE_LABELS: Final = frozenset({"bn", "bt", "bu", "bv", "bs", "bver"})
SENML_VALUE_LABELS: Final = frozenset({"v", "vs", "vb", "vd"})
SENML_LABELS: Final = SENML_BASE_LABELS | SENML_VALUE_LABELS | {"n", "u", "s", "t", "ut"}
#: Highest SenML version we can read; a pack claiming more must be refused.
SENML_MAX_VERSION: Final = 10
#: A resolved SenML time below 2**28 s is relative to the reading's "now".
SENML_RELATIVE_LIMIT: Final = 2**28

#: Device ids, metric names and SenML resolved names.
NAME_RE: Final = re.compile(r"[A-Za-z0-9][-:./_A-Za-z0-9]*")
# RFC 8428 uses base64url without padding; the standard alphabet is tolerated.
BASE64_RE: Final = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")

MAX_DEVICE_ID: Final = 255
MAX_DEVICE_TYPE: Final = 50  # telemetry.device_type VARCHAR(50)
MAX_METRIC_NAME: Final = 100  # telemetry.metric_name VARCHAR(100)
MAX_METRIC_TEXT: Final = 255  # telemetry.metric_text VARCHAR(255)
MAX_UNIT: Final = 32

#: ``device_type`` of SenML rows when the Kafka header names none.
SENML_DEVICE_TYPE: Final = "senml"
#: metadata keys the pipeline owns; a producer's metadata never overrides them.
PIPELINE_METADATA_KEYS: Final = ("unit", "kind", "device_ref", "received_at")


class SenMLRecord(TypedDict, total=False):
    """One record of a SenML pack (every label optional)."""

    bn: str
    bt: float
    bu: str
    bv: float
    bs: float
    bver: int
    n: str
    u: str
    v: float
    vs: str
    vb: bool
    vd: str
    s: float
    t: float
    ut: float


class SimpleTelemetry(TypedDict, total=False):
    """One measurement in the simple JSON format (docs/formats.md 5.2)."""

    device_id: str
    device_type: str
    time: str | float
    metric: str
    value: float | bool
    text: str
    unit: str
    location: dict[str, Any]
    metadata: dict[str, Any]
