"""GitHub sync: pull requests, reviews and workflow runs from the REST API, as webhooks would."""

from flowlens.github.rest import GitHubError
from flowlens.sync.client import (
    DeadlineReached,
    ETagCache,
    GitHubSyncClient,
    RateLimited,
)
from flowlens.sync.runner import RepositorySync, SyncResult
from flowlens.sync.schedule import SyncScheduler, SyncSummary, make_client, sync_once

__all__ = [
    "DeadlineReached",
    "ETagCache",
    "GitHubError",
    "GitHubSyncClient",
    "RateLimited",
    "RepositorySync",
    "SyncResult",
    "SyncScheduler",
    "SyncSummary",
    "make_client",
    "sync_once",
]
