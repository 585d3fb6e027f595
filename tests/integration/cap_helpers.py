"""Realistic CAP feeds served by pytest-httpserver: CAP 1.2 documents, Atom and RSS
indexes, conditional GET (ETag / Last-Modified), and the ways servers misbehave."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
SENDER = "ops@county-fire.example"


def cap_doc(
    identifier: str,
    *,
    msg_type: str = "Alert",
    references: str | None = None,
    sender: str = SENDER,
    sent: str = "2025-03-14T10:05:00+02:00",
    headline: str = "Chemical warehouse fire, stay indoors",
) -> bytes:
    refs = f"<references>{references}</references>" if references else ""
    info = (
        ""
        if msg_type == "Cancel"
        else "<info><language>en-US</language><category>Fire</category>"
        "<event>Industrial fire</event>"
        "<urgency>Immediate</urgency><severity>Extreme</severity><certainty>Observed</certainty>"
        f"<headline>{escape(headline)}</headline><area><areaDesc>Harbour district</areaDesc>"
        "<polygon>61.4980,23.7400 61.5030,23.7650 61.4950,23.7800 61.4905,23.7520 "
        "61.4980,23.7400</polygon></area></info>"
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<alert xmlns="{CAP_NS}">'
        f"<identifier>{identifier}</identifier><sender>{sender}</sender><sent>{sent}</sent>"
        f"<status>Actual</status><msgType>{msg_type}</msgType><scope>Public</scope>{refs}{info}"
        "</alert>"
    ).encode()


@dataclass
class Entry:
    entry_id: str
    updated: str
    path: str | None = None  # linked document
    embedded: bytes | None = None  # the CAP alert inside the entry
    escaped: bool = False  # embedded as escaped text rather than XML


def atom(entries: list[Entry], base: str = "") -> bytes:
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">',
             "<id>urn:example:county-fire:feed</id><title>County fire warnings</title>",
             "<updated>2025-03-14T10:30:00+02:00</updated>"]  # fmt: skip
    for e in reversed(entries):  # newest first, as feeds list them
        parts.append(
            f"<entry><id>{e.entry_id}</id><title>Warning</title><updated>{e.updated}</updated>"
        )
        if e.path:
            parts.append(
                f'<link rel="alternate" type="text/html" href="{base}/page/{e.entry_id}"/>'
            )
            parts.append(f'<link rel="related" type="application/cap+xml" href="{base}{e.path}"/>')
        if e.embedded is not None:
            body = e.embedded.split(b"?>", 1)[-1].decode()
            if e.escaped:
                parts.append(f'<content type="text">{escape(body)}</content>')
            else:
                parts.append(f'<content type="application/cap+xml">{body}</content>')
        parts.append("</entry>")
    parts.append("</feed>")
    return "".join(parts).encode()


def rss(entries: list[Entry]) -> bytes:
    items = "".join(
        f"<item><title>Warning</title><guid>{e.entry_id}</guid><pubDate>{e.updated}</pubDate>"
        f"<link>{e.path}</link></item>"
        for e in reversed(entries)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Civil '
        f"protection</title><link>http://example.org/</link>{items}</channel></rss>"
    ).encode()


@dataclass
class Page:
    body: bytes
    status: int = 200
    delay_s: float = 0.0
    content_type: str = "application/xml"


@dataclass
class FeedSite:
    """Paths → pages; answers 304 to a matching If-None-Match; records requests."""

    pages: dict[str, Page] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    busy: int = 0

    def serve(self, server: HTTPServer) -> FeedSite:
        server.expect_request(re.compile(".*")).respond_with_handler(self.handle)
        return self

    def put(self, path: str, body: bytes, **kw: object) -> None:
        with self.lock:
            self.pages[path] = Page(body, **kw)  # type: ignore[arg-type]

    async def idle(self) -> bool:
        return self.busy == 0

    def count(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)

    def handle(self, request: Request) -> Response:
        with self.lock:
            self.requests.append((request.path, dict(request.headers)))
            page = self.pages.get(request.path)
            self.busy += 1
        try:
            return self._answer(request, page)
        finally:
            with self.lock:
                self.busy -= 1

    def _answer(self, request: Request, page: Page | None) -> Response:
        if page is None:
            return Response("not found", status=404)
        if page.delay_s:
            time.sleep(page.delay_s)  # the slow server being simulated
        if page.status != 200:
            return Response("server error", status=page.status)
        etag = '"' + hashlib.sha256(page.body).hexdigest()[:16] + '"'
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers={"ETag": etag})
        validators = {"ETag": etag, "Last-Modified": "Fri, 14 Mar 2025 08:30:00 GMT"}
        return Response(page.body, status=200, content_type=page.content_type, headers=validators)
