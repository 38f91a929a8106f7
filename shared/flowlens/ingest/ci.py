"""The CI dashboard path: any CI system posts build results with a bearer key."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flowlens.db import Database
from flowlens.github.parse import (
    BuildFacts,
    Delivery,
    PayloadError,
    PrFacts,
    RepoFacts,
    in_range,
    map_build_status,
    parse,
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


# The GitHub Actions events a workflow step can forward (the file at $GITHUB_EVENT_PATH).
ACTIONS_EVENTS = ("workflow_run", "workflow_job")
_FULL_NAME = re.compile(r"[\w.-]+/[\w.-]+")


class BadCiBody(ValueError):
    """A forwarded GitHub Actions event that lacks what FlowLens needs; the message names the
    field."""


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def actions_event(payload: Any, event: str | None = None) -> Delivery | None:
    """The facts of a forwarded GitHub Actions event (`event`: its X-GitHub-Event header, if
    sent), or None when the body is a flat report.

    Mapped by the webhook parser, then keyed as the CI path keys a run (`ci:<run id>`), so a
    flat report and the event of one run are one build.
    """
    if not isinstance(payload, dict):
        raise BadCiBody("body: a JSON object is required")
    if event not in ACTIONS_EVENTS:
        event = next((name for name in ACTIONS_EVENTS if name in payload), None)
        if event is None:
            return None
    item = payload.get(event)
    if not isinstance(item, dict):
        raise BadCiBody(f"{event}: an object is required")
    if not _integer(item.get("id")):
        raise BadCiBody(f"{event}.id: an integer is required")
    if event == "workflow_job" and not _integer(item.get("run_id")):
        raise BadCiBody("workflow_job.run_id: an integer is required")
    if not isinstance(item.get("status"), str):
        raise BadCiBody(f"{event}.status: a string is required")
    repo = payload.get("repository")
    if isinstance(repo, str):  # a step may send the name alone (github.repository)
        repo = {"full_name": repo}
    if not isinstance(repo, dict) or not _FULL_NAME.fullmatch(str(repo.get("full_name") or "")):
        raise BadCiBody("repository: an object whose full_name is owner/name is required")
    try:
        facts = parse(event, {**payload, "repository": repo})
    except PayloadError as exc:
        raise BadCiBody(str(exc)) from None
    if event == "workflow_run":
        key, rerun = f"ci:{item['id']}", None
    else:  # a job of a run; a re-run of the job (new id) replaces it, as on the webhook path
        key = f"ci:{item['run_id']}/job:{item['id']}"
        rerun = f"job:{facts.builds[0].workflow_name}"
    facts.builds = [
        replace(build, provider="ci", external_id=key, rerun_key=build.rerun_key or rerun)
        for build in facts.builds
    ]
    assert facts.repo is not None
    # What the step sends is the team's copy of GitHub's payload: it names the repository
    # (and its GitHub id) but never overwrites the metadata GitHub's own deliveries keep.
    facts.repo = replace(facts.repo, complete=False)
    facts.event = "ci_build"
    return facts


async def record_ci_build(
    db: Database, report: CiBuild | Delivery, *, notify: bool = True
) -> int | None:
    """Write a CI build to the builds table (and the PR it belongs to) in one transaction;
    returns the build's id."""
    facts = report.facts() if isinstance(report, CiBuild) else report

    async def run() -> int | None:
        async with db.transaction() as tx:
            session = Session(tx, notify=notify)
            await apply_facts(session, facts, source="ci_build", delivery_id=None)
            await session.flush()
            for (repo_id, provider, external_id), build_id in session.builds.items():
                if build_id is None:  # an older report: the stored build stays as it is
                    build_id = await tx.value(
                        "build_id",
                        repository_id=repo_id,
                        provider=provider,
                        external_id=external_id,
                    )
                return int(build_id)
        return None

    result: int | None = await retrying(run)
    return result
