"""HTTP for the CAP poller: conditional GET, a whole-request deadline, a size limit.

httpx errors are translated here: into :class:`UpstreamUnavailable` with
``error_code`` ``timeout``, ``connect`` or ``http_status``, and a body over the
limit into :class:`DecodeError` ``oversize`` (read no further than the limit).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from pipeline.errors import DecodeError, UpstreamUnavailable
from pipeline.settings import CapFeedSettings

ACCEPT = (
    "application/cap+xml, application/atom+xml, application/rss+xml, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"
)


@dataclass(frozen=True, slots=True)
class Fetched:
    body: bytes | None  # None: 304 Not Modified
    etag: str | None
    last_modified: str | None


class Fetcher:
    def __init__(self, settings: CapFeedSettings, client: httpx.AsyncClient | None = None):
        self._settings = settings
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(settings.timeout_s),
            follow_redirects=True,
            max_redirects=5,
            headers={"User-Agent": settings.user_agent, "Accept": ACCEPT},
        )

    async def get(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> Fetched:
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        try:
            async with asyncio.timeout(self._settings.timeout_s):
                return await self._get(url, headers)
        except TimeoutError:
            raise UpstreamUnavailable(
                f"{url}: no complete answer within {self._settings.timeout_s:g} s",
                error_code="timeout",
            ) from None
        except httpx.TimeoutException as exc:
            raise UpstreamUnavailable(f"{url}: {exc!r}", error_code="timeout") from None
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"{url}: {exc!r}", error_code="connect") from None

    async def _get(self, url: str, headers: dict[str, str]) -> Fetched:
        limit = self._settings.max_bytes
        async with self._client.stream("GET", url, headers=headers) as resp:
            if resp.status_code == 304:
                return Fetched(None, resp.headers.get("etag"), resp.headers.get("last-modified"))
            if resp.status_code != 200:
                raise UpstreamUnavailable(
                    f"{url}: HTTP {resp.status_code}", error_code="http_status"
                )
            declared = resp.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise DecodeError("oversize", f"{url}: {declared} bytes, over {limit}")
            body = bytearray()
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > limit:
                    raise DecodeError("oversize", f"{url}: more than {limit} bytes")
            return Fetched(bytes(body), resp.headers.get("etag"), resp.headers.get("last-modified"))

    async def close(self) -> None:
        await self._client.aclose()
