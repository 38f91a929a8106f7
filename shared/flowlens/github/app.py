"""GitHub credentials: a token as given (token mode), or a GitHub App's installation tokens.

App mode signs a short JWT with the App's private key (RS256, PyJWT), exchanges it for an
installation access token (`POST /app/installations/{id}/access_tokens`) and keeps that token
until shortly before it expires. Which installation covers a repository comes from the
`installation` / `installation_repositories` webhooks (ingest stores it on the repository
row); a repository not known yet is asked of GitHub once (`GET /repos/{o}/{r}/installation`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import httpx
import jwt

from flowlens.github.rest import GitHubError, error_message, rate_limit_wait

log = logging.getLogger("flowlens.github")

API_VERSION = "2022-11-28"
USER_AGENT = "flowlens/0.1"
# GitHub accepts an App JWT for at most 10 minutes; iat is set back for clock drift.
JWT_LIFETIME = 540
JWT_BACKDATE = 60
# An installation token lives an hour; a new one is fetched this long before that.
REFRESH_BEFORE = 300.0
# A repository no installation covers is asked about again only after this long.
MISSING_TTL = 600.0


class TokenSource(Protocol):
    """The Authorization header for requests about one repository."""

    async def authorization(self, repository: str) -> str | None: ...

    def refused(self, repository: str) -> bool:
        """GitHub answered 401 to the credentials for `repository`: do not reuse them; whether
        new ones may be had (a retry may help)."""
        ...


@dataclass(frozen=True)
class StaticToken:
    """Token mode: GITHUB_TOKEN for every repository (None: anonymous)."""

    token: str | None

    async def authorization(self, repository: str) -> str | None:
        return f"Bearer {self.token}" if self.token else None

    def refused(self, repository: str) -> bool:
        """A token-mode token cannot be renewed: a 401 stays a 401."""
        return False


def app_jwt(app_id: int, private_key: str, now: float | None = None) -> str:
    """The App's JWT: RS256 over {iat, exp, iss}, as GitHub's App authentication asks."""
    issued = int(now if now is not None else time.time()) - JWT_BACKDATE
    try:
        return jwt.encode(
            {"iat": issued, "exp": issued + JWT_BACKDATE + JWT_LIFETIME, "iss": str(app_id)},
            private_key,
            algorithm="RS256",
        )
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        raise GitHubError(
            f"github app: GITHUB_APP_PRIVATE_KEY is not a usable RSA key ({type(exc).__name__})",
            retryable=False,
        ) from None


@dataclass
class _Token:
    value: str
    expires: float  # time.time()


class AppTokens:
    """App mode: installation tokens, fetched with the App's JWT and cached per installation."""

    def __init__(
        self,
        api_url: str,
        app_id: int,
        private_key: str,
        installation_of: Callable[[str], Awaitable[int | None]],
        *,
        remember: Callable[[str, int], Awaitable[None]] | None = None,
        client: httpx.AsyncClient | None = None,
        timeout_seconds: float = 15.0,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.app_id = app_id
        self._key = private_key
        self._installation_of = installation_of
        self._remember = remember
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout_seconds)
        self._tokens: dict[int, _Token] = {}
        self._installation_for: dict[str, int] = {}  # the installation last used per repository
        self._missing: dict[str, float] = {}  # repository -> when GitHub said none covers it
        self._locks: dict[int, asyncio.Lock] = {}
        self.exchanges = 0  # tokens fetched (for tests and logs)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    def _headers(self, authorization: str) -> dict[str, str]:
        return {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": USER_AGENT, "Authorization": authorization}  # fmt: skip

    async def authorization(self, repository: str) -> str | None:
        installation = await self._installation_of(repository)
        if installation is None:
            installation = await self._look_up(repository)
        self._installation_for[repository] = installation
        return f"Bearer {await self.token(installation)}"

    async def token(self, installation: int) -> str:
        """An installation token valid for at least REFRESH_BEFORE seconds more."""
        lock = self._locks.setdefault(installation, asyncio.Lock())
        async with lock:  # one exchange at a time per installation
            cached = self._tokens.get(installation)
            if cached is not None and cached.expires - time.time() > REFRESH_BEFORE:
                return cached.value
            url = f"{self.api_url}/app/installations/{installation}/access_tokens"
            response = await self._app_request("POST", url, f"installation {installation}")
            body = response.json()
            try:
                value = str(body["token"])
                expires = datetime.fromisoformat(str(body["expires_at"])).timestamp()
            except (KeyError, TypeError, ValueError) as exc:
                raise GitHubError(f"github app: unexpected token answer ({exc})") from None
            self._tokens[installation] = _Token(value, expires)
            self.exchanges += 1
            return value

    def refused(self, repository: str) -> bool:
        """Drop the cached token used for `repository` (GitHub refused it: revoked, or the
        installation changed); the next request exchanges a new one."""
        installation = self._installation_for.get(repository)
        return installation is not None and self._tokens.pop(installation, None) is not None

    async def _look_up(self, repository: str) -> int:
        missing = self._missing.get(repository)
        if missing is not None and time.monotonic() - missing < MISSING_TTL:
            raise GitHubError(f"github app: not installed on {repository}", status=404,
                              retryable=False)  # fmt: skip
        url = f"{self.api_url}/repos/{repository}/installation"
        try:
            response = await self._app_request("GET", url, repository)
        except GitHubError as exc:
            if exc.status == 404:
                self._missing[repository] = time.monotonic()
            raise
        self._missing.pop(repository, None)
        try:
            installation = int(response.json()["id"])
        except (KeyError, TypeError, ValueError) as exc:
            raise GitHubError(f"github app: unexpected installation answer ({exc})") from None
        if self._remember is not None:
            await self._remember(repository, installation)
        return installation

    async def _app_request(self, method: str, url: str, what: str) -> httpx.Response:
        """A request as the App itself (its JWT); GitHubError on anything but success."""
        headers = self._headers(f"Bearer {app_jwt(self.app_id, self._key)}")
        try:
            response = await self._client.request(method, url, headers=headers)
        except httpx.TransportError as exc:
            raise GitHubError(f"github app: {type(exc).__name__} for {what}") from exc
        if response.is_success:
            return response
        wait = rate_limit_wait(response)
        status = response.status_code
        message = error_message(response)
        raise GitHubError(
            f"github app: {status} for {what}" + (f": {message}" if message else ""),
            status=status,
            # 404: the App is not installed there (or no longer); 401: a wrong key or id.
            retryable=wait is not None or status >= 500 or status == 429,
            retry_after=wait,
        )
