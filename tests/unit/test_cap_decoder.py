"""alerts.cap decoder (docs/formats.md 3) and its sample file."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from shapely.geometry import Point, Polygon

from pipeline.decoders.cap.decoder import cap_severity, decode_cap
from pipeline.errors import InputError
from pipeline.settings import CapSettings
from schemas.canonical import CanonicalAlert
from schemas.intents import Discard, Intent, PatchAlert, SetRedis, StoreAlert
from schemas.records import RawRecord
from tests.samples import alert_view, assert_subset, sample_records

NOW = datetime(2025, 3, 14, 8, 10, 0, tzinfo=UTC)
KAFKA_MS = int(NOW.timestamp() * 1000)
NS12 = "urn:oasis:names:tc:emergency:cap:1.2"
NS11 = "urn:oasis:names:tc:emergency:cap:1.1"
SETTINGS = CapSettings()


# --- the sample file ------------------------------------------------------------


def check_cancels(expect: dict[str, Any], intents: list[Intent], stored: set[str]) -> None:
    assert len(intents) == len(expect["cancels"])
    for target, intent in zip(expect["cancels"], intents, strict=True):
        assert isinstance(intent, PatchAlert)
        assert intent.kind == "cancel"
        assert (intent.source, intent.external_id) == (target["source"], target["external_id"])
        assert intent.external_id in stored, "cancel targets an alert stored earlier"
        assert_subset(expect["metadata_patch"], intent.metadata_patch, "metadata_patch")
        assert intent.status_from_new == expect.get("status_if_new")
        assert intent.on_miss == (
            SetRedis(
                f"eriop:cap:cancelled:{target['external_id']}",
                expect["metadata_patch"]["cancelled_by"],
                ttl_s=86_400,
            ),
        )


def test_sample_file_in_order() -> None:
    stored: set[str] = set()
    samples = sample_records("alerts.cap")
    assert samples
    for record, now, expect, where in samples:
        if expect["outcome"] == "dlq":
            with pytest.raises(InputError) as info:
                decode_cap(record, SETTINGS, now)
            got = (info.value.stage, info.value.error_code)
            assert got == (expect["stage"], expect["error_code"]), where
            continue
        intents = decode_cap(record, SETTINGS, now)
        outcome = expect["outcome"]
        if outcome == "discard":
            assert [type(i) for i in intents] == [Discard], where
            assert isinstance(intents[0], Discard), where
            assert intents[0].reason == expect["reason"], where
        elif outcome == "cancel":
            check_cancels(expect, intents, stored)
        else:
            assert outcome in ("alert", "duplicate"), where
            store = intents[0]
            assert isinstance(store, StoreAlert), where
            alert = store.alert
            assert store.dismiss_if_key == f"eriop:cap:cancelled:{alert.external_id}", where
            if outcome == "duplicate":
                assert alert.external_id in stored, where
                continue
            assert alert.external_id not in stored, where
            assert_subset(expect["alert"], alert_view(alert), where)
            stored.add(alert.external_id)


# --- document builders -------------------------------------------------------------


def el(name: str, value: str | None) -> str:
    return "" if value is None else f"<{name}>{value}</{name}>"


def area_xml(
    desc: str | None = "Harbour district",
    polygons: tuple[str, ...] = (),
    circles: tuple[str, ...] = (),
    geocodes: tuple[tuple[str, str], ...] = (),
) -> str:
    body = el("areaDesc", desc)
    body += "".join(el("polygon", p) for p in polygons)
    body += "".join(el("circle", c) for c in circles)
    body += "".join(
        f"<geocode><valueName>{n}</valueName><value>{v}</value></geocode>" for n, v in geocodes
    )
    return f"<area>{body}</area>"


def info_xml(
    *,
    language: str | None = "en-US",
    category: str | tuple[str, ...] | None = "Fire",
    event: str | None = "Industrial fire",
    urgency: str | None = "Expected",
    severity: str | None = "Severe",
    certainty: str | None = "Possible",
    headline: str | None = "Warehouse fire",
    description: str | None = None,
    instruction: str | None = None,
    onset: str | None = None,
    effective: str | None = None,
    expires: str | None = None,
    areas: tuple[str, ...] = (),
) -> str:
    cats = (category,) if isinstance(category, str) else category or ()
    parts = [
        el("language", language),
        *(el("category", c) for c in cats),
        el("event", event),
        el("urgency", urgency),
        el("severity", severity),
        el("certainty", certainty),
        el("effective", effective),
        el("onset", onset),
        el("expires", expires),
        el("headline", headline),
        el("description", description),
        el("instruction", instruction),
        *areas,
    ]
    return "<info>" + "".join(parts) + "</info>"


def cap_xml(
    *,
    identifier: str | None = "CF-1",
    sender: str | None = "ops@fire.example",
    sent: str | None = "2025-03-14T10:05:00+02:00",
    status: str | None = "Actual",
    msg_type: str | None = "Alert",
    scope: str | None = "Public",
    references: str | None = None,
    infos: tuple[str, ...] | None = None,
    ns: str = NS12,
) -> str:
    parts = [
        el("identifier", identifier),
        el("sender", sender),
        el("sent", sent),
        el("status", status),
        el("msgType", msg_type),
        el("scope", scope),
        el("references", references),
        *(infos if infos is not None else (info_xml(),)),
    ]
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<alert xmlns="{ns}">{"".join(parts)}</alert>'


def record(value: str | bytes | None, ts_ms: int = KAFKA_MS) -> RawRecord:
    data = value.encode("utf-8") if isinstance(value, str) else value
    return RawRecord("alerts.cap", 1, 42, ts_ms, b"ops@fire.example", data)


def run(doc: str, settings: CapSettings = SETTINGS, now: datetime = NOW) -> list[Intent]:
    return decode_cap(record(doc), settings, now)


def alert_of(doc: str, settings: CapSettings = SETTINGS, now: datetime = NOW) -> CanonicalAlert:
    intents = run(doc, settings, now)
    assert isinstance(intents[0], StoreAlert)
    return intents[0].alert


def fails(doc: str | bytes, stage: str, code: str, settings: CapSettings = SETTINGS) -> None:
    with pytest.raises(InputError) as info:
        decode_cap(record(doc), settings, NOW)
    assert (info.value.stage, info.value.error_code) == (stage, code), info.value.reason


# --- message types and status ------------------------------------------------------


def test_alert_is_stored_with_early_cancel_check() -> None:
    intents = run(cap_xml())
    assert len(intents) == 1
    store = intents[0]
    assert isinstance(store, StoreAlert)
    assert store.dismiss_if_key == "eriop:cap:cancelled:ops@fire.example,CF-1"
    alert = store.alert
    assert alert.source == "cap"
    assert alert.external_id == "ops@fire.example,CF-1"
    assert alert.status == "new"
    assert alert.received_at == NOW
    assert alert.processed_at == NOW
    assert alert.raw_payload == {"format": "cap", "xml": cap_xml()}
    meta = alert.metadata
    assert meta["ingest"] == {"topic": "alerts.cap", "partition": 1, "offset": 42}
    assert meta["occurred_at"] == "2025-03-14T08:05:00Z"
    assert meta["expires_at"] is None
    assert meta["cap"] == {
        "status": "Actual",
        "msgType": "Alert",
        "urgency": "Expected",
        "severity": "Severe",
        "certainty": "Possible",
        "event": "Industrial fire",
        "category": "Fire",
        "sender": "ops@fire.example",
        "identifier": "CF-1",
    }
    assert meta["area_geojson"] == {"type": "FeatureCollection", "features": []}
    assert "exercise" not in meta


def test_update_supersedes_each_reference() -> None:
    refs = (
        "ops@fire.example,CF-1,2025-03-14T10:05:00+02:00 "
        "ops@fire.example,CF-0,2025-03-14T09:00:00+02:00"
    )
    intents = run(cap_xml(identifier="CF-2", msg_type="Update", references=refs))
    assert len(intents) == 3
    store, *patches = intents
    assert isinstance(store, StoreAlert)
    assert store.alert.external_id == "ops@fire.example,CF-2"
    assert store.alert.metadata["cap"]["supersedes"] == [
        "ops@fire.example,CF-1",
        "ops@fire.example,CF-0",
    ]
    assert patches == [
        PatchAlert(
            kind="supersede",
            source="cap",
            external_id=f"ops@fire.example,{ident}",
            metadata_patch={"superseded_by": "ops@fire.example,CF-2"},
        )
        for ident in ("CF-1", "CF-0")
    ]


def test_cancel_patches_each_reference_and_marks_unseen_targets() -> None:
    refs = "ops@fire.example,CF-1,2025-03-14T10:05:00+02:00 other@x.example,B-7"
    doc = cap_xml(
        identifier="CF-9",
        sent="2025-03-14T12:40:00.250+02:00",
        msg_type="Cancel",
        references=refs,
        infos=(),
    )
    intents = run(doc)
    assert intents == [
        PatchAlert(
            kind="cancel",
            source="cap",
            external_id=target,
            metadata_patch={
                "cancelled_at": "2025-03-14T10:40:00.250000Z",
                "cancelled_by": "ops@fire.example,CF-9",
            },
            status_from_new="dismissed",
            on_miss=(
                SetRedis(f"eriop:cap:cancelled:{target}", "ops@fire.example,CF-9", ttl_s=86_400),
            ),
        )
        for target in ("ops@fire.example,CF-1", "other@x.example,B-7")
    ]


def test_cancel_needs_references() -> None:
    fails(cap_xml(msg_type="Cancel", infos=()), "validate", "missing_field")


@pytest.mark.parametrize("refs", ["ops@fire.example", "a,b,c,d", ",CF-1,2025-03-14T10:05:00Z"])
def test_malformed_references(refs: str) -> None:
    fails(cap_xml(msg_type="Cancel", references=refs), "validate", "invalid_value")


@pytest.mark.parametrize("status", ["Exercise", "Test", "System", "Draft"])
def test_status_not_actual_is_discarded(status: str) -> None:
    intents = run(cap_xml(status=status))
    assert [i.reason for i in intents if isinstance(i, Discard)] == ["cap_status_not_actual"]
    assert len(intents) == 1


def test_exercise_accepted_when_configured() -> None:
    settings = CapSettings(accept_exercise=True)
    alert = alert_of(cap_xml(status="Exercise"), settings)
    assert alert.metadata["exercise"] is True
    assert alert.metadata["cap"]["status"] == "Exercise"
    test = run(cap_xml(status="Test"), settings)
    assert test == [Discard("cap_status_not_actual", {"status": "Test"})]


@pytest.mark.parametrize("msg_type", ["Ack", "Error"])
def test_ack_and_error_are_discarded(msg_type: str) -> None:
    intents = run(cap_xml(msg_type=msg_type, infos=()))
    assert intents == [Discard("cap_msgtype_ignored", {"msgType": msg_type})]


def test_non_actual_status_wins_over_msgtype() -> None:
    intents = run(cap_xml(status="Test", msg_type="Ack", infos=()))
    assert isinstance(intents[0], Discard)
    assert intents[0].reason == "cap_status_not_actual"


# --- type and severity ---------------------------------------------------------------

CATEGORIES = {
    "Geo": "geophysical",
    "Met": "weather",
    "Safety": "safety",
    "Security": "security",
    "Rescue": "rescue",
    "Fire": "fire",
    "Health": "health",
    "Env": "environmental",
    "Transport": "transport",
    "Infra": "infrastructure",
    "CBRNE": "cbrne",
    "Other": "other",
}


@pytest.mark.parametrize(("category", "alert_type"), CATEGORIES.items())
def test_every_category(category: str, alert_type: str) -> None:
    alert = alert_of(cap_xml(infos=(info_xml(category=category),)))
    assert alert.type == alert_type
    assert alert.metadata["cap"]["category"] == category


def test_first_category_decides() -> None:
    alert = alert_of(cap_xml(infos=(info_xml(category=("Met", "Fire")),)))
    assert alert.type == "weather"


@pytest.mark.parametrize(
    ("severity", "urgency", "certainty", "expected"),
    [
        ("Extreme", "Expected", "Possible", 1),
        ("Severe", "Expected", "Possible", 2),
        ("Moderate", "Expected", "Possible", 3),
        ("Minor", "Expected", "Possible", 4),
        ("Unknown", "Expected", "Possible", 3),
        ("Extreme", "Immediate", "Observed", 1),  # clamps at 1
        ("Severe", "Immediate", "Observed", 1),
        ("Severe", "Immediate", "Likely", 1),
        ("Severe", "Immediate", "Possible", 2),
        ("Severe", "Expected", "Observed", 2),
        ("Moderate", "Past", "Possible", 4),
        ("Moderate", "Expected", "Unlikely", 4),
        ("Minor", "Past", "Unlikely", 5),  # +1 once, then clamps at 5
        ("Minor", "Past", "Observed", 5),
        ("Moderate", "Immediate", "Unlikely", 4),
        ("Unknown", "Immediate", "Likely", 2),
        ("Minor", "Unknown", "Unknown", 4),
    ],
)
def test_severity_arithmetic(severity: str, urgency: str, certainty: str, expected: int) -> None:
    assert cap_severity(severity, urgency, certainty) == expected
    info = info_xml(severity=severity, urgency=urgency, certainty=certainty)
    assert alert_of(cap_xml(infos=(info,))).severity == expected


def test_legacy_very_likely_reads_as_likely() -> None:
    info = info_xml(severity="Severe", urgency="Immediate", certainty="Very Likely")
    alert = alert_of(cap_xml(infos=(info,)))
    assert alert.severity == 1
    assert alert.metadata["cap"]["certainty"] == "Likely"


# --- info selection, times, text -----------------------------------------------------


def test_info_chosen_by_language_prefix() -> None:
    infos = (
        info_xml(language="fi-FI", headline="Tulipalo"),
        info_xml(language="en-GB", headline="Fire"),
        info_xml(language="en-US", headline="Fire US"),
    )
    assert alert_of(cap_xml(infos=infos)).title == "Fire"
    fi = CapSettings(languages=("fi",))
    assert alert_of(cap_xml(infos=infos), fi).title == "Tulipalo"
    sv = CapSettings(languages=("sv",))
    assert alert_of(cap_xml(infos=infos), sv).title == "Tulipalo"


def test_prefix_match_respects_subtags() -> None:
    infos = (info_xml(language="fi", headline="first"), info_xml(language="eng", headline="x"))
    assert alert_of(cap_xml(infos=infos), CapSettings(languages=("en",))).title == "first"


def test_missing_language_means_en_us() -> None:
    infos = (info_xml(language="fi-FI", headline="fi"), info_xml(language=None, headline="dflt"))
    assert alert_of(cap_xml(infos=infos)).title == "dflt"


def test_only_the_chosen_info_is_validated() -> None:
    infos = (info_xml(language="fi-FI", urgency="Whenever"), info_xml(language="en"))
    assert alert_of(cap_xml(infos=infos)).metadata["cap"]["urgency"] == "Expected"


def test_expired_status() -> None:
    past = alert_of(cap_xml(infos=(info_xml(expires="2025-03-14T10:09:59+02:00"),)))
    assert past.status == "expired"
    assert past.metadata["expires_at"] == "2025-03-14T08:09:59Z"
    assert alert_of(cap_xml(infos=(info_xml(expires="2025-03-14T08:10:01Z"),))).status == "new"


def test_occurred_at_prefers_onset_then_effective_then_sent() -> None:
    both = info_xml(onset="2025-03-14T11:00:00+02:00", effective="2025-03-14T10:30:00+02:00")
    assert alert_of(cap_xml(infos=(both,))).metadata["occurred_at"] == "2025-03-14T09:00:00Z"
    eff = info_xml(effective="2025-03-14T10:30:00+02:00")
    assert alert_of(cap_xml(infos=(eff,))).metadata["occurred_at"] == "2025-03-14T08:30:00Z"


def test_times_accept_z_and_fractions_but_need_an_offset() -> None:
    alert = alert_of(cap_xml(sent="2025-03-14T08:05:00.5Z"))
    assert alert.metadata["occurred_at"] == "2025-03-14T08:05:00.500000Z"
    fails(cap_xml(sent="2025-03-14T08:05:00"), "validate", "invalid_value")
    fails(cap_xml(sent="yesterday"), "validate", "invalid_value")
    fails(cap_xml(infos=(info_xml(expires="2025-03-14T18:00:00"),)), "validate", "invalid_value")


def test_clock_skew_uses_sent() -> None:
    ahead = alert_of(cap_xml(sent="2025-03-14T08:20:00Z"))
    assert ahead.metadata["clock_skew_s"] == 600.0
    onset_ahead = info_xml(onset="2025-03-15T08:00:00Z")
    assert "clock_skew_s" not in alert_of(cap_xml(infos=(onset_ahead,))).metadata


def test_title_and_description() -> None:
    info = info_xml(headline=None, description="Smoke.", instruction="Close windows.")
    alert = alert_of(cap_xml(infos=(info,)))
    assert alert.title == "Industrial fire"
    assert alert.description == "Smoke.\n\nClose windows."
    only = alert_of(cap_xml(infos=(info_xml(instruction="Stay in."),)))
    assert only.description == "Stay in."
    assert alert_of(cap_xml()).description is None
    long = alert_of(cap_xml(infos=(info_xml(headline="h" * 300),)))
    assert long.title == "h" * 255


def test_long_external_id_is_hashed() -> None:
    alert = alert_of(cap_xml(sender="s" * 250 + "@x.example"))
    assert alert.external_id.startswith("sha256:")
    assert len(alert.external_id) == 71


def test_cap_11_namespace() -> None:
    assert alert_of(cap_xml(ns=NS11)).external_id == "ops@fire.example,CF-1"


# --- validation dead letters -----------------------------------------------------------


@pytest.mark.parametrize("field", ["identifier", "sender", "sent", "status", "msg_type", "scope"])
def test_required_header_fields(field: str) -> None:
    absent: dict[str, Any] = {field: None}
    blank: dict[str, Any] = {field: "  "}
    fails(cap_xml(**absent), "validate", "missing_field")
    fails(cap_xml(**blank), "validate", "missing_field")


@pytest.mark.parametrize("field", ["category", "event", "urgency", "severity", "certainty"])
def test_required_info_fields(field: str) -> None:
    absent: dict[str, Any] = {field: None}
    fails(cap_xml(infos=(info_xml(**absent),)), "validate", "missing_field")


@pytest.mark.parametrize("msg_type", ["Alert", "Update"])
def test_alert_and_update_need_an_info(msg_type: str) -> None:
    fails(cap_xml(msg_type=msg_type, infos=()), "validate", "missing_field")


@pytest.mark.parametrize(
    "change",
    [
        {"status": "Real"},
        {"msg_type": "Notice"},
        {"scope": "Everyone"},
        {"identifier": "CF 1"},
        {"identifier": "CF,1"},
        {"identifier": "CF&amp;1"},
        {"identifier": "CF&lt;1"},
        {"sender": "ops,fire"},
        {"infos": (info_xml(category="Flood"),)},
        {"infos": (info_xml(urgency="Now"),)},
        {"infos": (info_xml(severity="Huge"),)},
        {"infos": (info_xml(certainty="Sure"),)},
    ],
)
def test_invalid_values(change: dict[str, Any]) -> None:
    fails(cap_xml(**change), "validate", "invalid_value")


@pytest.mark.parametrize(
    ("doc", "stage", "code"),
    [
        ('<!DOCTYPE alert><alert xmlns="' + NS12 + '"/>', "decode", "not_xml"),
        (
            '<!DOCTYPE alert [<!ENTITY x "boom">]><alert xmlns="' + NS12 + '">&x;</alert>',
            "decode",
            "not_xml",
        ),
        (cap_xml()[:200], "decode", "not_xml"),
        ('{"identifier": "CF-1"}', "decode", "not_xml"),
        ("<alert><identifier>CF-1</identifier></alert>", "decode", "unknown_format"),
        ('<alert xmlns="urn:oasis:names:tc:emergency:cap:1.0"/>', "decode", "unknown_format"),
        ('<feed xmlns="' + NS12 + '"/>', "decode", "unknown_format"),
        (b"<alert>\xff</alert>", "decode", "not_utf8"),
        (b"", "decode", "unknown_format"),
    ],
)
def test_decode_dead_letters(doc: str | bytes, stage: str, code: str) -> None:
    fails(doc, stage, code)


def test_oversize_and_tombstone() -> None:
    doc = cap_xml()
    with pytest.raises(InputError) as info:
        decode_cap(record(doc), SETTINGS, NOW, max_bytes=len(doc.encode()) - 1)
    assert (info.value.stage, info.value.error_code) == ("decode", "oversize")
    assert decode_cap(record(None), SETTINGS, NOW) == [Discard("tombstone")]


def test_leading_bom_and_stale_encoding_declaration() -> None:
    doc = cap_xml(infos=(info_xml(headline="Tulipalo Hämeenlinnassa"),))
    doc = doc.replace('encoding="UTF-8"', 'encoding="ISO-8859-1"')
    intents = decode_cap(record(b"\xef\xbb\xbf" + doc.encode()), SETTINGS, NOW)
    assert isinstance(intents[0], StoreAlert)
    assert intents[0].alert.title == "Tulipalo Hämeenlinnassa"


# --- areas -------------------------------------------------------------------------------

SQUARE = "60.0,24.0 60.0,25.0 61.0,25.0 61.0,24.0 60.0,24.0"


def with_areas(*areas: str) -> CanonicalAlert:
    return alert_of(cap_xml(infos=(info_xml(areas=areas),)))


def test_convex_polygon_uses_centroid_and_swaps_to_lon_lat() -> None:
    alert = with_areas(area_xml(polygons=(SQUARE,)))
    assert alert.location is not None
    assert alert.location.lon == pytest.approx(24.5)
    assert alert.location.lat == pytest.approx(60.5)
    feature = alert.metadata["area_geojson"]["features"][0]
    assert feature["geometry"]["coordinates"][0][1] == [25.0, 60.0]
    assert "ring_closed" not in alert.metadata["cap"]


def test_concave_polygon_falls_back_to_a_point_inside() -> None:
    # A "C" shape: its centroid lies in the notch, outside the area.
    ring = [(0, 0), (0, 3), (3, 3), (3, 2), (1, 2), (1, 1), (3, 1), (3, 0), (0, 0)]
    text = " ".join(f"{60 + lat / 10},{24 + lon / 10}" for lon, lat in ring)
    shape = Polygon([(24 + lon / 10, 60 + lat / 10) for lon, lat in ring])
    assert not shape.contains(shape.centroid)
    alert = with_areas(area_xml(polygons=(text,)))
    assert alert.location is not None
    assert shape.contains(Point(alert.location.lon, alert.location.lat))


def test_unclosed_ring_is_closed() -> None:
    alert = with_areas(area_xml(polygons=("60.0,24.0 60.0,25.0 61.0,25.0",)))
    assert alert.metadata["cap"]["ring_closed"] is True
    ring = alert.metadata["area_geojson"]["features"][0]["geometry"]["coordinates"][0]
    assert ring == [[24.0, 60.0], [25.0, 60.0], [25.0, 61.0], [24.0, 60.0]]


@pytest.mark.parametrize(
    ("polygon", "code"),
    [
        ("60.0,24.0 60.0,25.0 60.0,24.0", "value_out_of_range"),  # 2 distinct points
        ("60.0,24.0 60.0,25.0", "value_out_of_range"),
        ("60.0,24.0 60.0,24.0 60.0,24.0 60.0,24.0", "value_out_of_range"),
        ("60.0,24.0 60.0,25.0 60.0,26.0 60.0,24.0", "value_out_of_range"),  # collinear
        ("91.0,24.0 60.0,25.0 61.0,25.0 91.0,24.0", "value_out_of_range"),
        ("60.0,181.0 60.0,25.0 61.0,25.0 60.0,181.0", "value_out_of_range"),
        ("60.0;24.0 60.0,25.0 61.0,25.0", "invalid_value"),
        ("60.0,east 60.0,25.0 61.0,25.0", "invalid_value"),
        ("60.0,nan 60.0,25.0 61.0,25.0", "invalid_value"),
    ],
)
def test_bad_polygons(polygon: str, code: str) -> None:
    fails(cap_xml(infos=(info_xml(areas=(area_xml(polygons=(polygon,)),)),)), "validate", code)


def test_circle_only_uses_its_centre() -> None:
    alert = with_areas(area_xml(circles=("61.4985,23.7590 1.2",)))
    assert alert.location is not None
    assert (alert.location.lon, alert.location.lat) == (23.759, 61.4985)
    feature = alert.metadata["area_geojson"]["features"][0]
    assert feature == {
        "type": "Feature",
        "properties": {"areaDesc": "Harbour district", "radius_km": 1.2},
        "geometry": {"type": "Point", "coordinates": [23.759, 61.4985]},
    }


@pytest.mark.parametrize(
    ("circle", "code"),
    [
        ("61.4,23.7 -1", "value_out_of_range"),
        ("95.0,23.7 1", "value_out_of_range"),
        ("61.4,23.7", "invalid_value"),
        ("61.4,23.7 wide", "invalid_value"),
    ],
)
def test_bad_circles(circle: str, code: str) -> None:
    fails(cap_xml(infos=(info_xml(areas=(area_xml(circles=(circle,)),)),)), "validate", code)


def test_zero_radius_circle_is_a_point() -> None:
    alert = with_areas(area_xml(circles=("61.4,23.7 0",)))
    assert alert.location is not None


def test_first_area_with_a_polygon_wins_over_earlier_circles() -> None:
    alert = with_areas(
        area_xml(desc="ring", circles=("10.0,10.0 5",)),
        area_xml(desc="box", polygons=(SQUARE,)),
    )
    assert alert.location is not None
    assert (round(alert.location.lon, 6), round(alert.location.lat, 6)) == (24.5, 60.5)
    descs = [f["properties"]["areaDesc"] for f in alert.metadata["area_geojson"]["features"]]
    assert descs == ["ring", "box"]


def test_first_polygon_of_the_area_is_used() -> None:
    other = "10.0,10.0 10.0,11.0 11.0,11.0 10.0,10.0"
    alert = with_areas(area_xml(polygons=(SQUARE, other)))
    assert alert.location is not None
    assert alert.location.lat == pytest.approx(60.5)
    assert len(alert.metadata["area_geojson"]["features"]) == 2


def test_geocodes_only() -> None:
    alert = with_areas(area_xml(geocodes=(("FIPS6", "006113"), ("UGC", "CAZ017"))))
    assert alert.location is None
    codes = [{"valueName": "FIPS6", "value": "006113"}, {"valueName": "UGC", "value": "CAZ017"}]
    assert alert.metadata["cap"]["geocodes"] == codes
    feature = alert.metadata["area_geojson"]["features"][0]
    assert feature["geometry"] is None
    assert feature["properties"] == {"areaDesc": "Harbour district", "geocodes": codes}
