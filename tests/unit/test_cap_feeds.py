"""Reading CAP feeds: Atom, RSS, embedded documents, hardened parsing."""

from __future__ import annotations

import pytest

from pipeline.errors import DecodeError, ValidationError
from pipeline.sources.cap_feed.feeds import check_document, detect_kind, feed_entries, parse_xml
from tests.integration.cap_helpers import Entry, atom, cap_doc, rss


def test_atom_entries_oldest_first_with_absolute_cap_links() -> None:
    feed = atom([Entry("urn:1", "2025-03-14T10:01:00+02:00", path="/cap/1.xml"),
                 Entry("urn:2", "2025-03-14T10:02:00+02:00", path="/cap/2.xml")])  # fmt: skip
    entries = feed_entries(parse_xml(feed, "t"), "https://alerts.example/feed.atom")
    assert [e.entry_id for e in entries] == ["urn:1", "urn:2"]
    # the application/cap+xml link wins over the HTML page
    assert entries[0].link == "https://alerts.example/cap/1.xml"
    assert entries[0].version == "2025-03-14T10:01:00+02:00"


def test_embedded_alert_becomes_a_standalone_document() -> None:
    doc = cap_doc("E-1")
    feed = atom([Entry("urn:e", "2025-03-14T10:01:00+02:00", embedded=doc)])
    (entry,) = feed_entries(parse_xml(feed, "t"), "http://x/")
    assert entry.document is not None
    header = check_document(entry.document)
    assert (header.identifier, header.sender) == ("E-1", "ops@county-fire.example")
    assert b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">' in entry.document
    assert entry.version.endswith("|ops@county-fire.example,E-1,2025-03-14T10:05:00+02:00")


def test_rss_items() -> None:
    feed = rss([Entry("g1", "Fri, 14 Mar 2025 08:05:00 GMT", path="http://x/1.xml")])
    root = parse_xml(feed, "t")
    assert detect_kind(root) == "rss"
    (entry,) = feed_entries(root, "http://x/")
    assert (entry.entry_id, entry.link) == ("g1", "http://x/1.xml")


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"<alert", "not_xml"),
        (b'<!DOCTYPE x [<!ENTITY a "b">]><alert/>', "not_xml"),
        (b"<html><body/></html>", "unknown_format"),
    ],
)
def test_bad_documents(data: bytes, code: str) -> None:
    with pytest.raises(DecodeError) as exc:
        check_document(data)
    assert exc.value.error_code == code


def test_cap_without_sender() -> None:
    doc = cap_doc("X").replace(b"<sender>ops@county-fire.example</sender>", b"")
    with pytest.raises(ValidationError):
        check_document(doc)
