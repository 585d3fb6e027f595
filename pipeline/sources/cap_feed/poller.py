"""One poll of one CAP source: index, new entries, their documents, Kafka, memory.

Order of effects per entry: the document is produced to ``alerts.cap`` (keyed by
its CAP ``sender``, bytes unchanged) and Kafka acknowledges it, then the entry
is stored as seen. A crash in between sends that one document again after the
restart; the worker stores it once (external id ``sender,identifier``).

The index's validators (ETag, Last-Modified) are kept only when every entry
was handled; otherwise the next poll reads the whole index again, so an entry
whose document could not be fetched is tried again rather than hidden by a 304.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from pipeline import metrics_front_doors as metrics
from pipeline.errors import DecodeError, EriopError, UpstreamUnavailable, ValidationError
from pipeline.settings import CapFeedSettings, CapSource
from pipeline.sources.cap_feed.feeds import (
    FeedEntry,
    cap_header,
    check_document,
    detect_kind,
    feed_entries,
    parse_xml,
)
from pipeline.sources.cap_feed.fetch import Fetcher
from pipeline.sources.cap_feed.state import FeedStore
from pipeline.sources.forward import ForwardRejected, KafkaForwarder

log = logging.getLogger(__name__)

DOOR = "cap"
TOPIC = "alerts.cap"


@dataclass
class PollReport:
    forwarded: int = 0
    not_modified: bool = False
    entry_errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.entry_errors


class SourcePoller:
    def __init__(
        self,
        source: CapSource,
        settings: CapFeedSettings,
        fetcher: Fetcher,
        store: FeedStore,
        forwarder: KafkaForwarder,
    ) -> None:
        self.source = source
        self._settings = settings
        self._fetcher = fetcher
        self._store = store
        self._forwarder = forwarder

    def _error(self, kind: str) -> None:
        metrics.FRONT_DOOR_ERRORS.labels(DOOR, self.source.name, kind).inc()

    async def poll(self) -> PollReport:
        """Poll once. Raises :class:`UpstreamUnavailable` or :class:`DecodeError`
        when the index itself fails (counted and stored by the caller)."""
        src = self.source
        state = await self._store.source(src.name)
        same_url = state is not None and state.url == src.url
        fetched = await self._fetcher.get(
            src.url,
            etag=state.etag if same_url and state else None,
            last_modified=state.last_modified if same_url and state else None,
        )
        report = PollReport()
        if fetched.body is None:
            report.not_modified = True
        else:
            root = parse_xml(fetched.body, f"{src.name} index")
            kind = detect_kind(root) if src.kind == "auto" else src.kind
            if kind == "document":
                header = cap_header(root)
                entry = FeedEntry(
                    src.url,
                    f"{header.sender},{header.identifier},{header.sent}",
                    None,
                    fetched.body,
                )
                await self._entries([entry], report)
            else:
                if detect_kind(root) == "document":
                    raise DecodeError("unknown_format", f"{src.name}: a CAP document, not a {kind}")
                await self._entries(feed_entries(root, src.url), report)
        # after a 304 the stored validators stay (a 304 need not repeat them)
        keep = report.ok and not report.not_modified
        await self._store.succeeded(
            src.name, src.url, fetched.etag, fetched.last_modified, keep=keep
        )
        if report.ok:
            metrics.CAP_LAST_SUCCESS.labels(src.name).set(time.time())
        await self._store.forget_old(src.name, self._settings.forget_after_days)
        return report

    async def _entries(self, entries: list[FeedEntry], report: PollReport) -> None:
        if not entries:
            return
        seen = await self._store.versions(self.source.name, [e.entry_id for e in entries])
        for entry in entries:
            if seen.get(entry.entry_id) == entry.version:
                continue
            try:
                await self._forward(entry)
            except (DecodeError, ValidationError, UpstreamUnavailable, ForwardRejected) as exc:
                self._error(exc.error_code)
                report.entry_errors.append(exc.error_code)
                log.warning("%s: entry %s: %s", self.source.name, entry.entry_id[:200], exc.reason)
                continue
            report.forwarded += 1

    async def _forward(self, entry: FeedEntry) -> None:
        doc = entry.document
        if doc is None:
            assert entry.link is not None
            doc = (await self._fetcher.get(entry.link)).body
            if doc is None:  # a 304 without validators: the server is confused
                raise UpstreamUnavailable(
                    f"{entry.link}: 304 to a plain GET", error_code="http_status"
                )
        header = check_document(doc)
        await self._forwarder.produce(TOPIC, header.sender.encode("utf-8"), doc)
        await self._store.forwarded(
            self.source.name, entry.entry_id, entry.version, header.sender, header.identifier
        )
        metrics.FRONT_DOOR_FORWARDED.labels(DOOR, self.source.name).inc()
        log.info("%s: forwarded %s,%s", self.source.name, header.sender, header.identifier)


def describe(exc: EriopError) -> str:
    return f"{exc.error_code}: {exc.reason}"
