"""What a CAP source serves: an Atom or RSS index of CAP entries, or one CAP document.

Parsing is hardened (``defusedxml``: no DTDs, no entities). An entry either
links to its CAP document (an Atom ``<link>`` of type ``application/cap+xml``,
else its alternate link; an RSS ``<enclosure>`` or ``<link>``) or carries the
whole CAP ``<alert>`` in its content, as some feeds do, either as XML or as
escaped text.

Each entry has an id (Atom ``id``, RSS ``guid``, else its link) and a version
(Atom ``updated``, RSS ``pubDate``, and for embedded documents also the CAP
``sender,identifier,sent``): an entry is fetched again when its version changes.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Literal
from urllib.parse import urljoin
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from pipeline.errors import DecodeError, ValidationError

ATOM = "http://www.w3.org/2005/Atom"
CAP_NAMESPACES = ("urn:oasis:names:tc:emergency:cap:1.2", "urn:oasis:names:tc:emergency:cap:1.1")
CAP_TYPES = ("application/cap+xml", "application/common-alerting-protocol+xml")

Kind = Literal["atom", "rss", "document"]


@dataclass(frozen=True, slots=True)
class CapHeader:
    sender: str
    identifier: str
    sent: str


@dataclass(frozen=True, slots=True)
class FeedEntry:
    entry_id: str
    version: str
    link: str | None
    #: the CAP document itself, when the feed carries it
    document: bytes | None
    updated: datetime | None = None


def parse_xml(data: bytes, what: str) -> Element:
    if b"<!DOCTYPE" in data[:4096].upper():
        raise DecodeError("not_xml", f"{what}: a DOCTYPE is not accepted")
    try:
        root: Element = SafeET.fromstring(data)
    except (ET.ParseError, DefusedXmlException, ValueError) as exc:
        raise DecodeError("not_xml", f"{what}: not well-formed XML ({exc})") from None
    return root


def _ns(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def detect_kind(root: Element) -> Kind:
    local, ns = _local(root.tag), _ns(root.tag)
    if local == "alert" and ns in CAP_NAMESPACES:
        return "document"
    if local == "feed" and ns == ATOM:
        return "atom"
    if local in ("rss", "RDF"):
        return "rss"
    raise DecodeError("unknown_format", f"root <{local}> is not an Atom/RSS feed or a CAP alert")


def cap_header(root: Element) -> CapHeader:
    """Sender, identifier and sent of a CAP ``<alert>``; the Kafka key is the sender."""
    ns = _ns(root.tag)
    if _local(root.tag) != "alert" or ns not in CAP_NAMESPACES:
        raise DecodeError("unknown_format", f"<{_local(root.tag)}> is not a CAP 1.1/1.2 alert")
    values = {}
    for name in ("sender", "identifier", "sent"):
        el = root.find(f"{{{ns}}}{name}")
        text = (el.text or "").strip() if el is not None else ""
        if not text:
            raise ValidationError("missing_field", f"CAP document without <{name}>")
        values[name] = text
    return CapHeader(values["sender"], values["identifier"], values["sent"])


def check_document(data: bytes) -> CapHeader:
    return cap_header(parse_xml(data, "CAP document"))


def _text(parent: Element, path: str) -> str:
    el = parent.find(path)
    return (el.text or "").strip() if el is not None else ""


def _embedded(container: Element | None) -> bytes | None:
    if container is None:
        return None
    for el in container.iter():
        if _local(el.tag) == "alert" and _ns(el.tag) in CAP_NAMESPACES:
            try:
                out: bytes = ET.tostring(
                    el, encoding="utf-8", xml_declaration=True, default_namespace=_ns(el.tag)
                )
            except ValueError:  # an unqualified attribute: keep the prefixed form
                out = ET.tostring(el, encoding="utf-8", xml_declaration=True)
            return out
    text = (container.text or "").strip()
    if text.startswith("<") and "emergency:cap:" in text[:2000]:
        return text.encode("utf-8")  # escaped XML inside the element: as served
    return None


def _timestamp(text: str) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None


def _atom_link(entry: Element) -> str | None:
    links = entry.findall(f"{{{ATOM}}}link")
    for pick in (
        lambda el: el.get("type") in CAP_TYPES,
        lambda el: el.get("rel", "alternate") == "alternate",
        lambda el: True,
    ):
        for el in links:
            if el.get("href") and pick(el):
                return el.get("href")
    return None


def _atom_entries(root: Element) -> list[FeedEntry]:
    out = []
    for entry in root.findall(f"{{{ATOM}}}entry"):
        link = _atom_link(entry)
        doc = _embedded(entry.find(f"{{{ATOM}}}content"))
        updated = _text(entry, f"{{{ATOM}}}updated") or _text(entry, f"{{{ATOM}}}published")
        entry_id = _text(entry, f"{{{ATOM}}}id") or link or ""
        out.append(_entry(entry_id, updated, link, doc))
    return out


def _rss_entries(root: Element) -> list[FeedEntry]:
    out = []
    for item in root.iter():
        if _local(item.tag) != "item":
            continue
        link = None
        for child in item:
            if _local(child.tag) == "enclosure" and child.get("url"):
                link = child.get("url")
        link = link or _text(item, "link") or None
        doc = None
        for child in item:
            if _local(child.tag) in ("description", "encoded") and doc is None:
                doc = _embedded(child)
        entry_id = _text(item, "guid") or link or ""
        out.append(_entry(entry_id, _text(item, "pubDate"), link, doc))
    return out


def _entry(entry_id: str, updated: str, link: str | None, doc: bytes | None) -> FeedEntry:
    version = updated
    if doc is not None:
        try:
            h = check_document(doc)
            version = f"{updated}|{h.sender},{h.identifier},{h.sent}"
        except (DecodeError, ValidationError):
            pass  # reported when the entry is forwarded
    return FeedEntry(entry_id, version, link, doc, _timestamp(updated))


def feed_entries(root: Element, base_url: str) -> list[FeedEntry]:
    """The entries of an index, oldest first, links made absolute; entries with
    neither an id nor a link, nor a document, are left out."""
    kind = detect_kind(root)
    entries = _atom_entries(root) if kind == "atom" else _rss_entries(root)
    entries = [
        FeedEntry(
            e.entry_id,
            e.version,
            urljoin(base_url, e.link) if e.link else None,
            e.document,
            e.updated,
        )
        for e in entries
        if e.entry_id and (e.link or e.document is not None)
    ]
    if entries and all(e.updated is not None for e in entries):
        try:
            return sorted(entries, key=lambda e: e.updated)  # type: ignore[arg-type,return-value]
        except TypeError:  # naive and aware times mixed
            pass
    return entries[::-1]  # feeds list the newest first
