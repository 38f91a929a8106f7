"""The CI dashboard path: any CI system posts build results with a bearer key."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    field_validator,
)

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
from flowlens.ingest.store import Session, apply_facts
from flowlens.retry import retrying

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
_ID = 2**63 - 1


class BadCiBody(ValueError):
    """A forwarded GitHub Actions event that lacks what FlowLens needs; the message names the
    field."""


def _no_nul(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise ValueError("must not contain NUL (\\u0000)")
    return value


# A JSON string or null, without NUL (PostgreSQL text cannot hold it).
_Text = Annotated[StrictStr | None, AfterValidator(_no_nul)]


class _Loose(BaseModel):
    """The fields FlowLens reads, type-checked; everything else in GitHub's payload is ignored."""

    model_config = ConfigDict(extra="ignore")


class _Actor(_Loose):
    login: _Text = Field(default=None, max_length=100)


class _RepoRef(_Loose):
    id: StrictInt | None = Field(default=None, ge=0, le=_ID)


class _BranchRef(_Loose):
    sha: _Text = Field(default=None, max_length=64)
    ref: _Text = Field(default=None, max_length=255)
    repo: _RepoRef | None = None


class _PrRef(_Loose):
    number: StrictInt = Field(ge=1, le=2**31 - 1)
    id: StrictInt | None = Field(default=None, ge=0, le=_ID)
    head: _BranchRef | None = None
    base: _BranchRef | None = None


class _Run(_Loose):
    id: StrictInt = Field(ge=1, le=_ID)
    status: StrictStr = Field(max_length=50)
    conclusion: _Text = Field(default=None, max_length=50)
    name: _Text = Field(default=None, max_length=300)
    head_branch: _Text = Field(default=None, max_length=255)
    head_sha: _Text = Field(default=None, max_length=64)
    html_url: _Text = Field(default=None, max_length=2000)
    event: _Text = Field(default=None, max_length=100)
    workflow_id: StrictInt | None = Field(default=None, ge=0, le=_ID)
    run_started_at: _Text = Field(default=None, max_length=40)
    created_at: _Text = Field(default=None, max_length=40)
    updated_at: _Text = Field(default=None, max_length=40)
    actor: _Actor | None = None
    triggering_actor: _Actor | None = None
    pull_requests: list[_PrRef] | None = Field(default=None, max_length=100)


class _Job(_Loose):
    id: StrictInt = Field(ge=1, le=_ID)
    run_id: StrictInt = Field(ge=1, le=_ID)
    status: StrictStr = Field(max_length=50)
    conclusion: _Text = Field(default=None, max_length=50)
    name: _Text = Field(default=None, max_length=300)
    workflow_name: _Text = Field(default=None, max_length=300)
    head_branch: _Text = Field(default=None, max_length=255)
    head_sha: _Text = Field(default=None, max_length=64)
    html_url: _Text = Field(default=None, max_length=2000)
    started_at: _Text = Field(default=None, max_length=40)
    completed_at: _Text = Field(default=None, max_length=40)
    created_at: _Text = Field(default=None, max_length=40)


class _Repository(_Loose):
    full_name: StrictStr = Field(pattern=r"^[\w.-]+/[\w.-]+$", max_length=200)
    id: StrictInt | None = Field(default=None, ge=0, le=_ID)


class _Named(_Loose):
    name: _Text = Field(default=None, max_length=300)


class ActionsEvent(_Loose):
    """A workflow_run or workflow_job event as a step forwards it: what FlowLens reads of it."""

    workflow_run: _Run | None = None
    workflow_job: _Job | None = None
    repository: _Repository | Annotated[StrictStr, Field(pattern=r"^[\w.-]+/[\w.-]+$")]
    workflow: _Named | None = None
    sender: _Actor | None = None


def actions_event(payload: Any, event: str | None = None) -> Delivery | None:
    """The facts of a forwarded GitHub Actions event (`event`: its X-GitHub-Event header, if
    sent), or None when the body is a flat report. ValidationError names a field that is
    missing or of the wrong type.

    Mapped by the webhook parser, then keyed as the CI path keys a run (`ci:<run id>`), so a
    flat report and the event of one run are one build.
    """
    if not isinstance(payload, dict):
        return None  # the flat report's validation says what is wrong
    if event not in ACTIONS_EVENTS:
        event = next((name for name in ACTIONS_EVENTS if name in payload), None)
        if event is None:
            return None
    checked = ActionsEvent.model_validate(payload)
    if getattr(checked, event) is None:
        raise BadCiBody(f"{event}: an object is required")
    repo = checked.repository
    full_name = repo if isinstance(repo, str) else repo.full_name
    # Only what was checked reaches the parser (its repository id filters a fork's PRs).
    body = checked.model_dump(exclude_none=True)
    body["repository"] = {"full_name": full_name}
    if not isinstance(repo, str) and repo.id is not None:
        body["repository"]["id"] = repo.id
    try:
        facts = parse(event, body)
    except PayloadError as exc:
        raise BadCiBody(f"{event}: {exc}") from None
    item = body[event]
    if event == "workflow_run":
        key, rerun = f"ci:{item['id']}", None
    else:  # a job of a run; a re-run of the job (new id) replaces it, as on the webhook path
        key = f"ci:{item['run_id']}/job:{item['id']}"
        rerun = f"job:{facts.builds[0].workflow_name}"
    facts.builds = [
        replace(build, provider="ci", external_id=key, rerun_key=build.rerun_key or rerun)
        for build in facts.builds
    ]
    # The repository by its name alone, as a flat report names it: what a key holder sends
    # never claims a GitHub id or overwrites what GitHub's own deliveries keep.
    owner, name = full_name.split("/", 1)
    facts.repo = RepoFacts(full_name=full_name, name=name, owner=owner, complete=False)
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
                        "ingest_build_id",
                        repository_id=repo_id,
                        provider=provider,
                        external_id=external_id,
                    )
                return int(build_id)
        return None

    result: int | None = await retrying(run)
    return result
