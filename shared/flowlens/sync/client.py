"""A GitHub REST client for the sync: conditional requests, pagination, rate limits, retries."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from flowlens.github.app import StaticToken, TokenSource
from flowlens.github.rest import (
    SECONDARY_LIMIT_WAIT,
    GitHubError,
    error_message,
    next_link,
    origin,
    parse_float,
    rate_limit_wait,
)
from flowlens.retry import backoff

log = logging.getLogger("flowlens.sync")

USER_AGENT = "flowlens-sync/0.1"
API_VERSION = "2022-11-28"


class RateLimited(GitHubError):
    """The rate limit resets later than this run may wait; `reset_in` seconds from now."""

    def __init__(self, message: str, *, reset_in: float, status: int | None = None) -> None:
        super().__init__(message, status=status, retryable=True)
        self.reset_in = reset_in


class DeadlineReached(GitHubError):
    """The run's time is up (a poller invocation's budget); the next run goes on."""


@dataclass
class Page:
    """One page of a list: its items, its number, whether it came from the cache (304)."""

    items: list[Any]
    number: int
    not_modified: bool
    body: Any


@dataclass
class _Cached:
    etag: str
    body: Any
    next_url: str | None
    size: int


@dataclass
class ClientStats:
    """Requests made, 304s, retries and rate-limit waits (for progress and tests)."""

    requests: int = 0
    not_modified: int = 0
    retries: int = 0
    waited_seconds: float = 0.0


class ETagCache:
    """ETag and parsed body per URL, least recently used first out, bounded in bytes.

    Kept in memory for the life of the process: a `flowlens sync --loop` or a warm poller
    instance asks again every minute and mostly gets 304s, which GitHub does not count against
    the primary rate limit. The database cursors bound what a run lists, so a cold process
    loses little by starting without ETags.
    """

    def __init__(self, max_bytes: int = 32 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, _Cached] = OrderedDict()
        self._size = 0

    def get(self, url: str) -> _Cached | None:
        item = self._items.get(url)
        if item is not None:
            self._items.move_to_end(url)
        return item

    def put(self, url: str, item: _Cached) -> None:
        old = self._items.pop(url, None)
        if old is not None:
            self._size -= old.size
        if item.size > self.max_bytes:
            return
        self._items[url] = item
        self._size += item.size
        while self._size > self.max_bytes and self._items:
            _, dropped = self._items.popitem(last=False)
            self._size -= dropped.size

    def __len__(self) -> int:
        return len(self._items)


class GitHubSyncClient:
    """GETs GitHub REST resources as the sync needs them."""

    def __init__(
        self,
        api_url: str,
        token: str | None = None,
        *,
        cache: ETagCache | None = None,
        max_attempts: int = 5,
        retry_delay: float = 0.5,
        timeout_seconds: float = 20.0,
        max_wait: float = 300.0,
        client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
        tokens: TokenSource | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        # App mode hands in its installation tokens; token mode a GITHUB_TOKEN (or none).
        self.tokens: TokenSource = tokens or StaticToken(token)
        self.cache = cache if cache is not None else ETagCache()
        self.max_attempts = max(1, max_attempts)
        self.retry_delay = retry_delay
        self.max_wait = max_wait
        self.stats = ClientStats()
        self._sleep = sleep
        self._origin = origin(self.api_url)
        self._headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": USER_AGENT,
        }
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout_seconds, follow_redirects=True)
        # When the primary limit is used up, no request is made before it resets.
        self._blocked_until = 0.0
        self._waited = 0.0
        self.deadline: float | None = None  # time.monotonic() after which runs stop

    async def aclose(self) -> None:
        """Close the HTTP client when this object created it."""
        if self._owns_client:
            await self._client.aclose()

    def start_run(self, *, max_wait: float | None = None, deadline: float | None = None) -> None:
        """Reset the per-run wait budget (and set the run's deadline)."""
        self._waited = 0.0
        if max_wait is not None:
            self.max_wait = max_wait
        self.deadline = deadline

    def url(self, path: str) -> str:
        """Absolute API URL of a path like /repos/o/r."""
        return f"{self.api_url}{path}"

    async def get_json(self, url: str) -> tuple[Any, bool]:
        """(parsed body, not_modified) of one resource."""
        body, _next, not_modified = await self._get(url)
        return body, not_modified

    async def pages(
        self, url: str, *, items_key: str | None = None, max_pages: int = 1000
    ) -> AsyncIterator[Page]:
        """Every page of a list, following rel="next" links (a failed page is retried)."""
        next_url: str | None = url
        number = 0
        while next_url is not None and number < max_pages:
            body, link, not_modified = await self._get(next_url)
            number += 1
            items = body.get(items_key) if items_key and isinstance(body, dict) else body
            if not isinstance(items, list):
                raise GitHubError(f"github: expected a list from {next_url}", retryable=False)
            yield Page(items=items, number=number, not_modified=not_modified, body=body)
            next_url = link

    async def _get(self, url: str) -> tuple[Any, str | None, bool]:
        """GET with If-None-Match, rate-limit waits and retries: (body, next link, 304?)."""
        attempt = 0
        limited = 0
        while True:
            await self._respect_limit(url)
            self._check_deadline()
            attempt += 1
            cached = self.cache.get(url)
            headers = dict(self._headers)
            authorization = await self.tokens.authorization(_repository_of(url))
            if authorization:
                headers["Authorization"] = authorization
            if cached is not None:
                headers["If-None-Match"] = cached.etag
            self.stats.requests += 1
            try:
                response = await self._client.get(url, headers=headers)
            except httpx.TransportError as exc:
                if attempt >= self.max_attempts:
                    raise GitHubError(
                        f"github: {type(exc).__name__} on {_path(url)} after {attempt} attempts"
                    ) from exc
                await self._backoff(attempt)
                continue
            self._note_limit(response)
            status = response.status_code
            if status == 304 and cached is not None:
                self.stats.not_modified += 1
                return cached.body, cached.next_url, True
            if status == 200:
                try:
                    body = response.json()
                except ValueError as exc:
                    raise GitHubError(f"github: {_path(url)} answered with invalid JSON") from exc
                next_url = self._next_url(response)
                etag = response.headers.get("ETag")
                if etag:
                    self.cache.put(url, _Cached(etag, body, next_url, len(response.content)))
                return body, next_url, False
            wait = rate_limit_wait(response, reset_slack=1.0)  # resets are whole seconds
            if wait is not None:
                limited += 1
                if limited > self.max_attempts:
                    raise RateLimited(
                        f"github: still rate limited on {_path(url)} after {limited} waits",
                        reset_in=max(wait, SECONDARY_LIMIT_WAIT),
                        status=status,
                    )
                self._blocked_until = max(self._blocked_until, time.monotonic() + wait)
                continue  # _respect_limit waits (bounded) or raises
            # 401 with an installation token: revoked or outdated; a new one may do.
            renewed = status == 401 and self.tokens.refused(_repository_of(url))
            transient = status >= 500 or status in (408, 429) or renewed
            if transient and attempt < self.max_attempts:
                await self._backoff(attempt)
                continue
            message = error_message(response)
            raise GitHubError(
                f"github: {status} on {_path(url)}"
                + (f" after {attempt} attempts" if transient else "")
                + (f": {message}" if message else ""),
                status=status,
                retryable=transient,
            )

    async def _respect_limit(self, url: str) -> None:
        """Wait for the rate limit to reset, if this run may still wait that long."""
        wait = self._blocked_until - time.monotonic()
        if wait <= 0:
            return
        if self._waited + wait > self.max_wait or (
            self.deadline is not None and time.monotonic() + wait > self.deadline
        ):
            raise RateLimited(
                f"github: rate limited before {_path(url)}; resets in {wait:.0f}s, "
                f"more than this run may wait ({self.max_wait - self._waited:.0f}s left)",
                reset_in=wait,
            )
        log.warning("github: rate limited, waiting %.1fs", wait)
        self._waited += wait
        self.stats.waited_seconds += wait
        await self._sleep(wait)

    def _note_limit(self, response: httpx.Response) -> None:
        """A response that used the last request of the window blocks until the reset."""
        if response.headers.get("X-RateLimit-Remaining") != "0" or response.status_code >= 400:
            return
        reset = parse_float(response.headers.get("X-RateLimit-Reset"))
        if reset is not None:
            wait = max(0.0, reset - time.time())
            self._blocked_until = max(self._blocked_until, time.monotonic() + wait)

    def _check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise DeadlineReached("sync: out of time for this run")

    async def _backoff(self, attempt: int) -> None:
        self.stats.retries += 1
        await self._sleep(backoff(attempt, base=self.retry_delay, cap=60.0))

    def _next_url(self, response: httpx.Response) -> str | None:
        """The rel="next" link, only if it stays on the API host (the token goes with it)."""
        try:
            return next_link(response, self._origin)
        except ValueError as exc:
            raise GitHubError(str(exc), retryable=False) from None


def _repository_of(url: str) -> str:
    """owner/name of a /repos/{owner}/{name}/... URL ('' for any other)."""
    parts = urlsplit(url).path.split("/")
    return f"{parts[2]}/{parts[3]}" if len(parts) > 3 and parts[1] == "repos" else ""


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")
