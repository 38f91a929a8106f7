"""What every GitHub REST client here shares: rate limits, error text, safe pagination."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import httpx

# GitHub's advice for secondary rate limits without a Retry-After: wait at least a minute.
SECONDARY_LIMIT_WAIT = 60.0


class GitHubError(Exception):
    """The GitHub API refused or failed; `retryable` says whether trying later may help. The
    one error type of FlowLens's GitHub clients (the files client, the sync)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = True,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        # Seconds GitHub asked to wait (a rate limit's reset or Retry-After), when it did.
        self.retry_after = retry_after


def origin(url: str) -> str:
    """scheme://host[:port] of a URL, lower-cased."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def parse_float(value: str | None) -> float | None:
    """A header value as a float, or None."""
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def error_message(response: httpx.Response) -> str:
    """GitHub's short error message, if the body has one."""
    try:
        body = response.json()
    except ValueError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return str(message)[:200] if message else ""


def rate_limit_wait(response: httpx.Response, reset_slack: float = 0.0) -> float | None:
    """Seconds to wait when the response is a rate limit (primary or secondary), else None."""
    if response.status_code not in (403, 429):
        return None
    headers = response.headers
    retry_after = headers.get("Retry-After")
    if retry_after is not None:
        seconds = parse_float(retry_after)
        return max(0.0, seconds) if seconds is not None else SECONDARY_LIMIT_WAIT
    if headers.get("X-RateLimit-Remaining") == "0":
        reset = parse_float(headers.get("X-RateLimit-Reset"))
        if reset is None:
            return SECONDARY_LIMIT_WAIT
        return max(0.0, reset - time.time()) + reset_slack
    if response.status_code == 429 or "rate limit" in error_message(response).lower():
        return SECONDARY_LIMIT_WAIT
    return None  # any other 403 is a permission problem: waiting will not help


def next_link(response: httpx.Response, api_origin: str) -> str | None:
    """The rel="next" URL; raises ValueError if it leaves the API host (the token goes with it)."""
    link = response.links.get("next", {}).get("url")
    if not link:
        return None
    absolute = str(response.url.join(link))
    if origin(absolute) != api_origin:
        raise ValueError(
            f"github: refusing to follow a next link to another host ({origin(absolute)})"
        )
    return absolute
