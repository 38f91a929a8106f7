"""The REST and WebSocket contract as models: documentation (OpenAPI) and contract tests.

Handlers return the dicts of flowlens.serialize directly (no per-request model validation);
these models describe exactly those shapes, and the contract tests validate every response
against them with extra fields forbidden.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from flowlens.model import (
    PrState,
    PrStatus,
    Risk,
    StatusApproval,
    StatusBuild,
    StatusMerge,
    StatusPr,
)

BuildStatus = Literal["queued", "running", "success", "failed"]
Outcome = Literal["buildFailed", "closedUnmerged", "reverted", "followUp"]


class Strict(BaseModel):
    """Unknown fields are an error: the contract is exact."""

    model_config = ConfigDict(extra="forbid")


class PipelineStatus(Strict):
    statusPr: StatusPr
    statusBuild: StatusBuild
    statusApproval: StatusApproval
    statusMerge: StatusMerge


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


class OutcomeRate(Strict):
    """How many insights of one level met one outcome, and that count over the level's."""

    count: int = Field(ge=0)
    rate: float | None = Field(ge=0, le=1)


class RiskLevelOutcomes(Strict):
    riskLevel: Risk
    count: int = Field(ge=0)
    outcomes: dict[Outcome, OutcomeRate]


class RiskMetrics(Strict):
    """/api/metrics/risk: the live calibration of the risk read (docs/RISK_MODEL.md)."""

    windowDays: int
    outcomes: list[Outcome]
    levels: list[RiskLevelOutcomes]


Band = Literal["elite", "high", "medium", "low"]


class DeploymentFrequency(Strict):
    perDay: float = Field(ge=0)
    perWeek: float = Field(ge=0)
    band: Band | None


class LeadTime(Strict):
    medianSeconds: float | None
    band: Band | None
    changes: int = Field(ge=0)


class ChangeFailureRate(Strict):
    rate: float | None = Field(ge=0, le=1)
    band: Band | None
    deployments: int = Field(ge=0)
    failed: int = Field(ge=0)


class RecoveryTime(Strict):
    medianSeconds: float | None
    band: Band | None
    recoveries: int = Field(ge=0)


class DoraDay(Strict):
    day: str = Field(description="YYYY-MM-DD (UTC)")
    deployments: int = Field(ge=0)
    failed: int = Field(ge=0)
    medianLeadSeconds: float | None


class DoraMetrics(Strict):
    """/api/metrics/dora: DORA's four keys over the window (docs/METRICS.md)."""

    windowDays: int
    environment: str
    deploymentFrequency: DeploymentFrequency
    leadTimeForChanges: LeadTime
    changeFailureRate: ChangeFailureRate
    failedDeploymentRecoveryTime: RecoveryTime
    series: list[DoraDay]


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
    status_pr: StatusPr
    status_build: StatusBuild
    status_approval: StatusApproval
    status_merge: StatusMerge


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


# The shipped Flutter app's contract (/flutter): snake_case, ids as strings, status words as
# the app maps them. Its fromApiJson factories read these fields; extra ones are an error here
# so that the tests notice a change.
AppState = Literal["opened", "building", "buildPassed", "buildFailed", "approved", "merged",
                   "closed"]  # fmt: skip


class FlutterStatus(Strict):
    """GET /flutter/: the app's health check reads status == "online"."""

    status: Literal["online"]
    service: str


class FlutterRepository(Strict):
    """One /flutter/api/repositories item (Repository.fromApiJson)."""

    id: str
    name: str
    full_name: str
    description: str
    owner: str
    owner_avatar: str
    is_private: bool
    default_branch: str
    open_prs: int
    total_prs: int
    merged_prs: int
    closed_prs: int
    draft_prs: int
    last_activity: datetime
    language: str | None
    stars: int
    forks: int
    html_url: str


class FlutterPullRequest(Strict):
    """One /flutter/api/pull-requests item (PullRequest.fromApiJson)."""

    id: str
    repo_id: str
    pr_number: int
    title: str
    description: str
    author: str
    author_avatar: str
    commit_sha: str
    repository_name: str
    created_at: datetime
    updated_at: datetime
    status: AppState
    merged: bool
    changed_files: int
    additions: int
    deletions: int
    branch_name: str
    is_draft: bool


class FlutterInsight(Strict):
    """One /flutter/api/insights item (AIInsight.fromApiJson; keyChanges is camelCase there)."""

    id: str
    repo_id: str
    pr_number: int
    commit_sha: str
    author: str
    avatar_url: str
    risk_level: Risk
    summary: str
    recommendation: str
    created_at: datetime
    keyChanges: list[str] = Field(max_length=5)
    confidence_score: float = Field(ge=0, le=1)
    model: str


class FlutterPipeline(Strict):
    """One /flutter/api/pipelines item (PipelineRun.fromApiJson). `history` is a JSON string
    of [{at, field, value, meta}], which the app decodes itself."""

    id: str
    repo_id: str
    pr_number: int
    commit_sha: str
    author: str
    avatar_url: str
    title: str
    status_pr: StatusPr
    status_build: StatusBuild
    status_approval: Literal["pending", "approved", "rejected"]  # the app's word for changes
    status_merge: StatusMerge
    history: str
    processed: bool
    created_at: datetime
    updated_at: datetime


class FlutterStateUpdate(Strict):
    """One /flutter/ws message (WebSocketService._onMessage)."""

    repo_id: str
    pr_number: int
    state: AppState
