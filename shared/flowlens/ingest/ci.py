"""The CI dashboard path: any CI system posts build results with a bearer key."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flowlens.db import Database
from flowlens.github.parse import (
    BuildFacts,
    Delivery,
    PrFacts,
    RepoFacts,
    in_range,
    map_build_status,
)
from flowlens.ingest.store import Session, apply_facts, retrying

CI_STATUSES = {
    "success", "skipped", "failure", "cancelled", "timed_out", "in_progress", "queued",
    "waiting", "requested", "completed",
}  # fmt: skip


class CiBuild(BaseModel):
    """A build report from a CI system (GitHub Actions step, Cloud Build, Jenkins...)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    repository: str = Field(pattern=r"^[\w.-]+/[\w.-]+$")
    run_id: str = Field(min_length=1, max_length=200, alias="runId")
    status: str
    conclusion: str | None = None
    workflow: str = Field(default="", max_length=300)
    branch: str | None = None
    commit_sha: str | None = Field(default=None, alias="commitSha", max_length=64)
    pr_number: int | None = Field(default=None, alias="prNumber", ge=1, le=2**31 - 1)
    actor: str | None = None
    url: str | None = Field(default=None, max_length=2000)
    started_at: datetime | None = Field(default=None, alias="startedAt")
    finished_at: datetime | None = Field(default=None, alias="finishedAt")
    updated_at: datetime | None = Field(default=None, alias="updatedAt")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL text cannot hold NUL.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL (\\u0000)")
        return value

    @field_validator("run_id", mode="before")
    @classmethod
    def _run_id_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @field_validator("started_at", "finished_at", "updated_at")
    @classmethod
    def _utc_unless_said(cls, value: datetime | None) -> datetime | None:
        # A time without an offset is read as UTC, not as the database session's zone, and
        # can then be compared with one that has an offset.
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return None if value is None else in_range(value)

    @field_validator("status")
    @classmethod
    def _known_status(cls, value: str) -> str:
        if value.lower() not in CI_STATUSES:
            raise ValueError(f"status must be one of {sorted(CI_STATUSES)}")
        return value.lower()

    def facts(self) -> Delivery:
        """The build as delivery facts, linked to its PR by number or head sha."""
        owner, name = self.repository.split("/", 1)
        refs: tuple[PrFacts, ...] = ()
        if self.pr_number:
            refs = (
                PrFacts(
                    number=self.pr_number,
                    action=None,
                    head_sha=self.commit_sha,
                    head_ref=self.branch,
                    complete=False,
                ),
            )
        build = BuildFacts(
            provider="ci",
            external_id=f"ci:{self.run_id}",
            workflow_name=self.workflow,
            status=map_build_status(self.status, self.conclusion),
            conclusion=self.conclusion,
            branch=self.branch,
            commit_sha=self.commit_sha,
            pr_numbers=(self.pr_number,) if self.pr_number else (),
            pr_refs=refs,
            triggered_by=self.actor,
            url=self.url,
            started_at=self.started_at,
            finished_at=self.finished_at,
            updated_at=self.updated_at or self.finished_at or self.started_at,
        )
        repo = RepoFacts(full_name=self.repository, name=name, owner=owner, complete=False)
        return Delivery(event="ci_build", action=None, repo=repo, builds=[build])


async def record_ci_build(db: Database, report: CiBuild, *, notify: bool = True) -> None:
    """Write a CI report to the builds table (and the PR it belongs to) in one transaction."""
    facts = report.facts()

    async def run() -> None:
        async with db.transaction() as tx:
            session = Session(tx, notify=notify)
            await apply_facts(session, facts, source="ci_build", delivery_id=None)
            await session.flush()

    await retrying(run)
