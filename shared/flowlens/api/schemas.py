"""The REST and WebSocket contract as models: documentation (OpenAPI) and contract tests.

Handlers return the dicts of flowlens.serialize directly (no per-request model validation);
these models describe exactly those shapes, and the contract tests validate every response
against them with extra fields forbidden.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PrStatus = Literal["pending", "building", "buildPassed", "buildFailed", "approved", "merged",
                   "closed"]  # fmt: skip
PrState = Literal["open", "closed", "merged"]
Risk = Literal["low", "medium", "high"]
BuildStatus = Literal["queued", "running", "success", "failed"]


class Strict(BaseModel):
    """Unknown fields are an error: the contract is exact."""

    model_config = ConfigDict(extra="forbid")


class PipelineStatus(Strict):
    statusPr: Literal["opened", "updated", "closed"]
    statusBuild: Literal["pending", "building", "buildPassed", "buildFailed"]
    statusApproval: Literal["pending", "approved", "changes_requested"]
    statusMerge: Literal["pending", "merged", "closed"]


class PullRequest(Strict):
    """One /api/prs item."""

    number: int
    title: str
    description: str
    author: str
    authorAvatar: str | None
    commitSha: str | None
    repositoryName: str
    createdAt: datetime | None
    updatedAt: datetime | None
    status: PrStatus
    filesChanged: list[str]
    additions: int
    deletions: int
    branchName: str | None
    baseBranch: str | None
    isDraft: bool
    state: PrState
    url: str | None
    pipelineStatus: PipelineStatus
    riskLevel: Risk | None


class Insight(Strict):
    """One /api/insights item."""

    id: int
    prNumber: int
    repositoryName: str
    commitSha: str
    riskLevel: Risk
    summary: str
    recommendation: str
    keyChanges: list[str] = Field(max_length=5)
    confidenceScore: float = Field(ge=0, le=1)
    createdAt: datetime
    model: str


class Repository(Strict):
    """/api/repository and each /api/repositories item."""

    name: str
    fullName: str
    description: str | None
    owner: str
    ownerAvatar: str | None
    isPrivate: bool
    defaultBranch: str | None
    openPRs: int
    totalPRs: int
    lastActivity: datetime | None
    languages: list[str]
    stars: int
    forks: int


class Build(Strict):
    """One /api/builds item, and /api/builds/{id}."""

    id: int
    provider: str
    externalId: str
    workflowName: str
    status: BuildStatus
    branch: str | None
    commitSha: str | None
    prNumber: int | None
    triggeredBy: str | None
    url: str | None
    startedAt: datetime | None
    finishedAt: datetime | None
    durationSeconds: float | None
    repositoryName: str


class MetricsSummary(Strict):
    """/api/metrics/summary: rates are fractions (0..1) of the finished builds in the window."""

    windowDays: int
    buildCount: int
    successRate: float = Field(ge=0, le=1)
    failureRate: float = Field(ge=0, le=1)
    avgBuildTimeSeconds: float | None
    lastBuildStatus: BuildStatus | None
    lastUpdated: datetime | None


class Health(Strict):
    status: Literal["ok"]
    clients: int


class Error(Strict):
    """Every error answer."""

    error: str


class AiInsight(Strict):
    risk_level: Risk
    summary: str
    recommendation: str
    key_changes: list[str]
    confidence_score: float
    commit_sha: str
    model: str


class WsPipelineStatus(Strict):
    status_pr: Literal["opened", "updated", "closed"]
    status_build: Literal["pending", "building", "buildPassed", "buildFailed"]
    status_approval: Literal["pending", "approved", "changes_requested"]
    status_merge: Literal["pending", "merged", "closed"]


class PrUpdateData(Strict):
    pr_number: int
    repository: str
    title: str
    updated_at: datetime | None
    version: int = Field(description="Per-PR version; strictly increasing on one socket.")
    pipeline_status: WsPipelineStatus
    ai_insight: AiInsight | None
    pull_request: PullRequest


class PrUpdate(Strict):
    """One WebSocket message."""

    event: Literal["pr_update"]
    data: PrUpdateData
