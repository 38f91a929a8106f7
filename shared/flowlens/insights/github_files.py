"""GitHub's pulls/{n}/files API: the real file list and size-capped patches of a PR."""

from __future__ import annotations

import asyncio
import logging
import random
import re
from typing import Any

import httpx

from flowlens.github.app import StaticToken, TokenSource
from flowlens.github.rest import (
    GitHubError,
    error_message,
    next_link,
    origin,
    rate_limit_wait,
)
from flowlens.insights.models import FileChange

log = logging.getLogger(__name__)

USER_AGENT = "flowlens-insights/0.1"
API_VERSION = "2022-11-28"
PER_PAGE = 100
# GitHub lists at most 3000 files of a pull request: 30 pages of 100.
MAX_PAGES = 30
TRUNCATION_MARKER = "\n… [patch truncated: {shown} of {total} bytes shown]"

_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


def cap_patch(patch: str, max_bytes: int) -> str:
    """Patch cut to max_bytes of UTF-8 (at a line end when possible), with a marker."""
    raw = patch.encode("utf-8")
    if len(raw) <= max_bytes:
        return patch
    cut = raw[:max_bytes]
    newline = cut.rfind(b"\n")
    # Prefer whole lines, unless that throws away most of the budget.
    if newline >= max_bytes // 2:
        cut = cut[:newline]
    shown = cut.decode("utf-8", errors="ignore")
    return shown + TRUNCATION_MARKER.format(shown=len(shown.encode("utf-8")), total=len(raw))


class GitHubFilesClient:
    """Lists the changed files of a pull request through the GitHub REST API."""

    def __init__(
        self,
        api_url: str,
        token: str | None,
        *,
        patch_max_bytes: int = 4000,
        client: httpx.AsyncClient | None = None,
        max_wait: float = 60.0,
        max_attempts: int = 3,
        retry_delay: float = 0.5,
        timeout_seconds: float = 15.0,
        tokens: TokenSource | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        # App mode hands in its installation tokens; token mode a GITHUB_TOKEN (or none).
        self.tokens: TokenSource = tokens or StaticToken(token)
        self.patch_max_bytes = patch_max_bytes
        self.max_wait = max_wait
        self.max_attempts = max(1, max_attempts)
        self.retry_delay = retry_delay
        self._origin = origin(self.api_url)
        self._headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": USER_AGENT,
        }
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout_seconds)

    async def aclose(self) -> None:
        """Close the HTTP client when this object created it."""
        if self._owns_client:
            await self._client.aclose()

    async def list_files(self, repository: str, number: int) -> list[FileChange]:
        """Every changed file of PR `number` in `owner/name`, following pagination."""
        if not _REPOSITORY.match(repository):
            raise GitHubError(f"github: bad repository name {repository!r}", retryable=False)
        url: str | None = f"{self.api_url}/repos/{repository}/pulls/{int(number)}/files"
        params: dict[str, Any] | None = {"per_page": PER_PAGE}
        files: list[FileChange] = []
        budget = _Budget(self.max_wait)
        pages = 0
        while url is not None:
            if pages == MAX_PAGES:
                log.warning(
                    "github: stopped after %d pages of files",
                    MAX_PAGES,
                    extra={"repository": repository, "pr": number},
                )
                break
            response = await self._get(url, params, budget, repository, number)
            pages += 1
            files.extend(self._parse(response, repository, number))
            url = self._next_url(response)
            params = None  # the next link already carries the query
        return files

    async def _get(
        self,
        url: str,
        params: dict[str, Any] | None,
        budget: _Budget,
        repository: str,
        number: int,
    ) -> httpx.Response:
        """GET with rate-limit waits and a few retries of transient failures."""
        where = f"{repository}#{number}"
        attempt = 0
        while True:
            attempt += 1
            headers = dict(self._headers)
            authorization = await self.tokens.authorization(repository)
            if authorization:
                headers["Authorization"] = authorization
            try:
                response = await self._client.get(url, params=params, headers=headers)
            except httpx.TransportError as exc:
                if attempt >= self.max_attempts:
                    raise GitHubError(
                        f"github: {type(exc).__name__} listing files of {where} "
                        f"after {attempt} attempts",
                        retryable=True,
                    ) from exc
                await asyncio.sleep(self._backoff(attempt))
                continue

            if response.status_code == 200:
                return response

            wait = rate_limit_wait(response)
            if wait is not None:
                if not budget.allows(wait):
                    raise GitHubError(
                        f"github: rate limited listing files of {where}; "
                        f"reset in {wait:.0f}s exceeds the {self.max_wait:.0f}s wait limit",
                        status=response.status_code,
                        retryable=True,
                    )
                log.warning(
                    "github: rate limited, waiting %.1fs",
                    wait,
                    extra={"repository": repository, "pr": number},
                )
                budget.spend(wait)
                await asyncio.sleep(wait)
                continue

            status = response.status_code
            # 401 with an installation token: revoked or outdated; a new one may do.
            renewed = status == 401 and self.tokens.refused(repository)
            transient = status >= 500 or status in (408, 429) or renewed
            if transient and attempt < self.max_attempts:
                await asyncio.sleep(self._backoff(attempt))
                continue
            message = error_message(response)
            raise GitHubError(
                f"github: {status} listing files of {where}"
                + (f" after {attempt} attempts" if transient else "")
                + (f": {message}" if message else ""),
                status=status,
                retryable=transient,
            )

    def _backoff(self, attempt: int) -> float:
        delay = self.retry_delay * 2.0 ** (attempt - 1)
        return delay / 2 + random.uniform(0, delay / 2)

    def _parse(self, response: httpx.Response, repository: str, number: int) -> list[FileChange]:
        """FileChanges from one page; a malformed page is an error, not an empty list."""
        try:
            items = response.json()
            if not isinstance(items, list):
                raise TypeError("not a list")
            return [self._file(item) for item in items]
        except (ValueError, TypeError, KeyError) as exc:
            raise GitHubError(
                f"github: unexpected files response for {repository}#{number}: {exc}",
                status=response.status_code,
                retryable=False,
            ) from exc

    def _file(self, item: dict[str, Any]) -> FileChange:
        patch = item.get("patch")
        # No patch for binary files or very large diffs: GitHub leaves the key out.
        patch = cap_patch(patch, self.patch_max_bytes) if isinstance(patch, str) else None
        return FileChange(
            path=item["filename"],
            status=item.get("status") or "modified",
            additions=int(item.get("additions") or 0),
            deletions=int(item.get("deletions") or 0),
            patch=patch,
            previous_path=item.get("previous_filename"),
        )

    def _next_url(self, response: httpx.Response) -> str | None:
        """The rel="next" link, only if it stays on the API host (the token goes with it)."""
        try:
            return next_link(response, self._origin)
        except ValueError as exc:
            raise GitHubError(str(exc), retryable=False) from None


class _Budget:
    """How long one list_files call may still spend waiting for rate limits."""

    def __init__(self, seconds: float) -> None:
        self.left = seconds

    def allows(self, wait: float) -> bool:
        return wait <= self.left

    def spend(self, wait: float) -> None:
        self.left -= wait
