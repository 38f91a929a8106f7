"""Which GitHub App installation covers a repository: kept from the App's installation
webhooks (ingest), read when a token for the repository is needed (poller, sync)."""

from __future__ import annotations

from flowlens.db import Database, Tx
from flowlens.github.app import AppTokens, StaticToken, TokenSource
from flowlens.github.parse import InstallationFacts
from flowlens.github.rest import GitHubError
from flowlens.settings import Settings


async def apply_installation(tx: Tx, facts: InstallationFacts) -> None:
    """Record an installation event: its state, and the repositories it covers."""
    await tx.execute("github_installation_state", id=facts.installation_id,
                     account=facts.account, action=facts.action)  # fmt: skip
    await tx.execute(
        "github_installation_repositories", id=facts.installation_id, added=list(facts.added),
        removed=list(facts.removed), deleted=facts.action == "installation.deleted",
    )  # fmt: skip


class InstallationLookup:
    """installation_of / remember for flowlens.github.app.AppTokens, against the database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def installation_of(self, repository: str) -> int | None:
        """The installation to ask a token of; None when unknown (GitHub is asked)."""
        async with self.db.transaction() as tx:
            value = await tx.value("github_installation_of", repository=repository)
        if value == -1:
            raise GitHubError(
                f"github app: the installation covering {repository} is suspended or deleted",
                retryable=False,
            )
        return int(value) if value is not None else None

    async def remember(self, repository: str, installation: int) -> None:
        async with self.db.transaction() as tx:
            await tx.execute("github_remember_installation", repository=repository,
                             id=installation)  # fmt: skip


def token_source(settings: Settings, db: Database) -> TokenSource:
    """The credentials for GitHub requests: the App's installation tokens in App mode,
    GITHUB_TOKEN (or none) otherwise."""
    if settings.app_mode:
        assert settings.github_app_id is not None
        lookup = InstallationLookup(db)
        return AppTokens(
            settings.github_api_url or "https://api.github.com",
            settings.github_app_id,
            settings.secret("github_app_private_key") or "",
            lookup.installation_of,
            remember=lookup.remember,
        )
    return StaticToken(settings.secret("github_token"))
