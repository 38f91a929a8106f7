"""Turn a GitHub webhook payload into the facts FlowLens stores (pure, no I/O)."""

from __future__ import annotations

import os
import reprlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import pydantic_core
from pydantic import ConfigDict, Field, TypeAdapter
from typing_extensions import TypedDict

from flowlens.dora import DoraFacts
from flowlens.dora import facts as dora_facts

# Events whose payload FlowLens turns into state; anything else is stored and ignored.
ACTED_ON = frozenset(
    {
        "pull_request",
        "pull_request_review",
        "workflow_run",
        "workflow_job",
        "check_suite",
        "check_run",
        "status",
        "push",
        "deployment",
        "deployment_status",
        "ping",
        "installation",
        "installation_repositories",
        "repository",
    }
)

# pull_request actions after which the head commit deserves a (new) risk analysis.
ANALYSE_ACTIONS = frozenset({"opened", "reopened", "synchronize", "ready_for_review", "edited"})


# FlowLens's own write-back (a check run in App mode, a commit status in token mode): its
# webhooks are never builds of the PR (docs/GITHUB_APP.md).
CHECK_NAME = "FlowLens risk"
# The App's id: the check suites GitHub makes for FlowLens's own check runs are not builds
# either. From GITHUB_APP_ID, as the settings read it.
OWN_APP_ID: int | None = (
    int(os.environ["GITHUB_APP_ID"])
    if os.environ.get("GITHUB_APP_ID", "").strip().isdigit()
    else None
)


class PayloadError(ValueError):
    """A payload that lacks what its event type must carry."""


def ts(value: Any) -> datetime | None:
    """Parse GitHub's ISO-8601 timestamps (Z or offset); None when absent."""
    if not value:
        return None
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (ValueError, OverflowError, OSError):
            raise PayloadError(f"timestamp out of range: {value!r}") from None
    text = str(value).replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return in_range(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))


def in_range(moment: datetime) -> datetime:
    """A timestamp Python can read back from the database: in UTC, within years 1-9999 (one
    stored past that would fail every later delivery that loads its row)."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise PayloadError(f"timestamp out of range: {moment.isoformat()}") from None


@dataclass(frozen=True)
class RepoFacts:
    """Repository metadata as a payload shows it."""

    full_name: str
    name: str
    owner: str
    github_id: int | None = None
    owner_avatar: str | None = None
    description: str | None = None
    is_private: bool = False
    default_branch: str | None = None
    language: str | None = None
    stars: int | None = None
    forks: int | None = None
    html_url: str | None = None
    updated_at: datetime | None = None
    # Complete metadata (a full repository object), not a minimal reference.
    complete: bool = True
    # Fields the payload sets to null (a description or language removed), as opposed to
    # fields it does not carry, which keep what is stored.
    cleared: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PrFacts:
    """A pull request as a payload shows it."""

    number: int
    action: str | None
    head_sha: str | None
    github_id: int | None = None
    title: str | None = None
    body: str | None = None
    author: str | None = None
    author_avatar: str | None = None
    head_ref: str | None = None
    base_ref: str | None = None
    is_draft: bool | None = None
    state: str | None = None  # open | closed
    merged: bool | None = None
    html_url: str | None = None
    changed_files: int | None = None
    additions: int | None = None
    deletions: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    merged_at: datetime | None = None
    closed_at: datetime | None = None
    # True for the full object of a pull_request event; False for a reference (workflow_run).
    complete: bool = True


@dataclass(frozen=True)
class ReviewFacts:
    """One submitted (or dismissed) review."""

    pr_number: int
    review_id: int
    reviewer: str
    state: str  # approved | changes_requested | commented | dismissed
    commit_sha: str | None
    submitted_at: datetime | None


@dataclass(frozen=True)
class BuildFacts:
    """One CI build (workflow run, job, check suite/run, commit status)."""

    provider: str
    external_id: str
    workflow_name: str
    status: str  # queued | running | success | failed
    conclusion: str | None
    branch: str | None
    commit_sha: str | None
    pr_numbers: tuple[int, ...] = ()
    pr_refs: tuple[PrFacts, ...] = ()
    triggered_by: str | None = None
    url: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None
    # Builds of one commit with the same key replace each other, the newest counting (None:
    # the rule by provider in the pr_checks query).
    rerun_key: str | None = None

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return max(0.0, (self.finished_at - self.started_at).total_seconds())
        return None


@dataclass(frozen=True)
class InstallationFacts:
    """What an installation event says: which installation, what happened, which repositories
    it now covers or no longer covers (by full name)."""

    installation_id: int
    action: str
    account: str | None
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


@dataclass
class Delivery:
    """Everything one webhook delivery tells FlowLens."""

    event: str
    action: str | None
    repo: RepoFacts | None = None
    extra_repos: list[RepoFacts] = field(default_factory=list)
    renamed_from: str | None = None
    pr: PrFacts | None = None
    review: ReviewFacts | None = None
    builds: list[BuildFacts] = field(default_factory=list)
    ignored: bool = False
    # GitHub asked to run FlowLens's check again: this PR's head is analysed anew.
    rerun: PrFacts | None = None
    # An installation or installation_repositories event of the App (App mode).
    installation: InstallationFacts | None = None
    # What it tells DORA's keys: a deployment and its outcome, a push, a deploy run.
    dora: DoraFacts | None = None

    @property
    def needs_analysis(self) -> bool:
        """Whether the poller should analyse this delivery's head commit."""
        if self.rerun is not None:
            return True
        return (
            self.event == "pull_request"
            and self.pr is not None
            and self.pr.head_sha is not None
            and self.action in ANALYSE_ACTIONS
            and self.pr.state == "open"
        )

    @property
    def pr_number(self) -> int | None:
        if self.rerun is not None:
            return self.rerun.number
        if self.pr is not None:
            return self.pr.number
        if self.review is not None:
            return self.review.pr_number
        for build in self.builds:
            if build.pr_numbers:
                return build.pr_numbers[0]
        return None


# GitHub build vocabularies mapped onto FlowLens's four build states.
_CONCLUSION = {
    "success": "success",
    "skipped": "success",
    "neutral": "success",
    "failure": "failed",
    "cancelled": "failed",
    "timed_out": "failed",
    # A fork's run waiting for a maintainer's approval: GitHub shows it as waiting, not failed
    # (approved, the same run goes on with a newer timestamp).
    "action_required": "queued",
    "startup_failure": "failed",
    "stale": "failed",
    "error": "failed",
}
_RUNNING = {"in_progress": "running", "running": "running"}
_QUEUED = {"queued", "waiting", "requested", "pending"}


def map_build_status(status: str | None, conclusion: str | None = None) -> str:
    """GitHub (or CI) status + conclusion -> queued | running | success | failed."""
    status = (status or "").lower()
    conclusion = (conclusion or "").lower() or None
    if status == "completed" or (conclusion and status not in _RUNNING and status not in _QUEUED):
        return _CONCLUSION.get(conclusion or "", "failed")
    if status in _CONCLUSION:
        return _CONCLUSION[status]
    if status in _RUNNING:
        return "running"
    # Unknown (future) vocabularies count as not finished rather than refusing the delivery.
    return "queued"


def _obj(value: Any) -> dict[str, Any]:
    """A payload's object, or an empty one where it has null or another shape."""
    return value if isinstance(value, dict) else {}


def _member(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    """An object member (absent or null: empty); PayloadError when it has another type."""
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{where}.{key}: expected an object, got {_json_type(value)}")
    return value


def _shown(value: Any) -> str:
    """A payload value for a reason: short, whatever its size."""
    return reprlib.repr(value)


def _text(data: dict[str, Any], key: str, where: str) -> str | None:
    """A string member (absent or null: None); PayloadError when it has another type."""
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise PayloadError(f"{where}.{key}: expected a string, got {_json_type(value)}")
    return value


def _integer(data: dict[str, Any], key: str, where: str) -> int | None:
    """An integer member (absent or null: None); PayloadError for another type (a float, a
    boolean, infinity)."""
    value = data.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise PayloadError(f"{where}.{key}: expected an integer, got {_json_type(value)}")
    return value


def _login(user: Any) -> tuple[str | None, str | None]:
    if isinstance(user, dict):
        return user.get("login"), user.get("avatar_url")
    return None, None


def _repo(data: Any, *, complete: bool = True) -> RepoFacts | None:
    if not isinstance(data, dict) or not data.get("full_name"):
        return None
    full_name = data["full_name"]
    if not isinstance(full_name, str):
        raise PayloadError(f"repository.full_name: expected a string, got {_json_type(full_name)}")
    owner_login, owner_avatar = _login(data.get("owner"))
    return RepoFacts(
        full_name=full_name,
        name=str(data.get("name") or full_name.split("/")[-1]),
        owner=owner_login or full_name.split("/")[0],
        github_id=data.get("id"),
        owner_avatar=owner_avatar,
        description=data.get("description"),
        is_private=bool(data.get("private", False)),
        default_branch=data.get("default_branch"),
        language=data.get("language"),
        stars=data.get("stargazers_count"),
        forks=data.get("forks_count"),
        html_url=data.get("html_url"),
        updated_at=ts(data.get("updated_at")),
        complete=complete and "owner" in data,
        cleared=frozenset(k for k in _CLEARABLE if k in data and data[k] is None),
    )


_CLEARABLE = ("description", "language")  # payload keys a repository may have set to null


def _pr(data: dict[str, Any], action: str | None) -> PrFacts:
    number = data.get("number")
    if not isinstance(number, int):
        raise PayloadError("pull_request.number missing")
    author, avatar = _login(_member(data, "user", "pull_request"))
    head = _member(data, "head", "pull_request")
    base = _member(data, "base", "pull_request")
    if data.get("state") not in (None, "open", "closed"):
        raise PayloadError(
            f"pull_request.state: expected open or closed, got {_shown(data['state'])}"
        )
    return PrFacts(
        number=number,
        action=action,
        head_sha=head.get("sha"),
        github_id=data.get("id"),
        title=data.get("title") or "",
        body=data.get("body") or "",
        author=author or "",
        author_avatar=avatar,
        head_ref=head.get("ref"),
        base_ref=base.get("ref"),
        is_draft=bool(data.get("draft", False)),
        state=data.get("state"),
        merged=bool(data.get("merged") or data.get("merged_at")),
        html_url=data.get("html_url"),
        changed_files=data.get("changed_files"),
        additions=data.get("additions"),
        deletions=data.get("deletions"),
        created_at=ts(data.get("created_at")),
        updated_at=ts(data.get("updated_at")),
        merged_at=ts(data.get("merged_at")),
        closed_at=ts(data.get("closed_at")),
    )


def _pr_refs(items: Any, repo_id: Any = None) -> tuple[PrFacts, ...]:
    """PR references of a build; those of another repository (a fork's PR) link by sha only."""
    if items is not None and not isinstance(items, list):
        raise PayloadError(f"pull_requests: expected an array, got {_json_type(items)}")
    refs = []
    for item in items or []:
        if isinstance(item, dict) and isinstance(item.get("number"), int):
            head = _obj(item.get("head"))
            base = _obj(item.get("base"))
            base_repo = _obj(base.get("repo")).get("id")
            if repo_id is not None and base_repo is not None and base_repo != repo_id:
                continue
            refs.append(
                PrFacts(
                    number=item["number"],
                    action=None,
                    head_sha=head.get("sha"),
                    github_id=item.get("id"),
                    head_ref=head.get("ref"),
                    base_ref=base.get("ref"),
                    complete=False,
                )
            )
    return tuple(refs)


def _workflow_run(p: dict[str, Any]) -> list[BuildFacts]:
    run = p.get("workflow_run") or {}
    if "id" not in run:
        raise PayloadError("workflow_run.id missing")
    refs = _pr_refs(run.get("pull_requests"), (p.get("repository") or {}).get("id"))
    actor, _ = _login(run.get("triggering_actor") or run.get("actor"))
    started = ts(run.get("run_started_at") or run.get("created_at"))
    status = map_build_status(run.get("status"), run.get("conclusion"))
    return [
        BuildFacts(
            provider="github_actions",
            external_id=f"run:{run['id']}",
            workflow_name=run.get("name") or (p.get("workflow") or {}).get("name") or "",
            status=status,
            conclusion=run.get("conclusion"),
            branch=run.get("head_branch"),
            commit_sha=run.get("head_sha"),
            pr_numbers=tuple(r.number for r in refs),
            pr_refs=refs,
            triggered_by=actor,
            url=run.get("html_url"),
            started_at=started,
            finished_at=ts(run.get("updated_at")) if status in ("success", "failed") else None,
            updated_at=ts(run.get("updated_at")),
            # A new run of the workflow for the same event (closing and reopening a PR,
            # "Re-run" on a run that GitHub gave a new id) replaces the earlier run, as GitHub's
            # checks list shows the latest; a push run and a pull_request run both count.
            rerun_key=(
                f"workflow:{run['workflow_id']}:{run.get('event') or ''}"
                if run.get("workflow_id") is not None
                else None
            ),
        )
    ]


def _workflow_job(p: dict[str, Any]) -> list[BuildFacts]:
    job = p.get("workflow_job") or {}
    if "id" not in job:
        raise PayloadError("workflow_job.id missing")
    status = map_build_status(job.get("status"), job.get("conclusion"))
    updated = ts(job.get("completed_at") or job.get("started_at") or job.get("created_at"))
    name = job.get("workflow_name") or ""
    return [
        BuildFacts(
            provider="github_actions_job",
            external_id=f"job:{job['id']}",
            workflow_name=f"{name} / {job.get('name')}" if name else str(job.get("name") or ""),
            status=status,
            conclusion=job.get("conclusion"),
            branch=job.get("head_branch"),
            commit_sha=job.get("head_sha"),
            triggered_by=_login(p.get("sender"))[0],
            url=job.get("html_url"),
            started_at=ts(job.get("started_at")),
            finished_at=ts(job.get("completed_at")),
            updated_at=updated,
        )
    ]


def _check(p: dict[str, Any], key: str) -> list[BuildFacts]:
    item = p.get(key) or {}
    if "id" not in item:
        raise PayloadError(f"{key}.id missing")
    if key == "check_run" and item.get("name") == CHECK_NAME:
        return []  # FlowLens's own check: the risk read, not a build
    if (
        key == "check_suite"
        and OWN_APP_ID is not None
        and (_obj(item.get("app")).get("id") == OWN_APP_ID)
    ):
        return []  # the suite GitHub made for FlowLens's own check
    refs = _pr_refs(item.get("pull_requests"), (p.get("repository") or {}).get("id"))
    status = map_build_status(item.get("status"), item.get("conclusion"))
    if key == "check_suite":
        app = item.get("app") or {}
        name = app.get("name") or "check suite"
        started, finished = ts(item.get("created_at")), None
        if status in ("success", "failed"):
            finished = ts(item.get("updated_at"))
        updated = ts(item.get("updated_at"))
        branch = item.get("head_branch")
    else:
        name = item.get("name") or "check run"
        started, finished = ts(item.get("started_at")), ts(item.get("completed_at"))
        updated = finished or started
        branch = (item.get("check_suite") or {}).get("head_branch")
    return [
        BuildFacts(
            provider=key,
            external_id=f"{key}:{item['id']}",
            workflow_name=str(name),
            status=status,
            conclusion=item.get("conclusion"),
            branch=branch,
            commit_sha=item.get("head_sha"),
            pr_numbers=tuple(r.number for r in refs),
            pr_refs=refs,
            triggered_by=_login(p.get("sender"))[0],
            url=item.get("html_url") or item.get("details_url"),
            started_at=started,
            finished_at=finished,
            updated_at=updated,
        )
    ]


def _status(p: dict[str, Any]) -> list[BuildFacts]:
    sha = p.get("sha")
    context = _text(p, "context", "status") or "default"
    if not sha:
        raise PayloadError("status.sha missing")
    if context == CHECK_NAME:
        return []  # FlowLens's own status: the risk read, not a build
    state = _text(p, "state", "status") or "pending"
    status = map_build_status("completed" if state != "pending" else "pending", state)
    branches = p.get("branches") or []
    created = ts(p.get("created_at"))
    return [
        BuildFacts(
            provider="status",
            # A commit status is per (commit, context): the newest state per context wins.
            external_id=f"status:{sha}:{context}",
            workflow_name=str(context),
            status=status,
            conclusion=state if state != "pending" else None,
            branch=branches[0].get("name") if branches and isinstance(branches[0], dict) else None,
            commit_sha=sha,
            triggered_by=_login(p.get("sender"))[0],
            url=p.get("target_url"),
            # Every state of a status is a new object: only a pending one marks a start (the
            # finished one's duration comes from the stored start, upsert_build).
            started_at=created if status == "queued" else None,
            finished_at=ts(p.get("updated_at")) if status in ("success", "failed") else None,
            updated_at=ts(p.get("updated_at")) or created,
        )
    ]


# What parse() reads of the objects that make up most of a payload's bytes: repositories (each
# with some hundred URL fields), users and the pull request. load_payload builds only these keys
# of them from the JSON, and every other key whole: half the time of building all of it for a
# 24 KB pull_request payload, no gain for a check_run (BENCHMARKS.md). A key the readers above
# take from one of these objects must be listed here: tests/unit/test_parse.py reads every
# fixture both ways.
_AS_IS = Field(union_mode="left_to_right")  # an unexpected shape (null, a string) kept as it is
_PRUNE = ConfigDict(extra="ignore")


class _User(TypedDict, total=False):
    __pydantic_config__ = _PRUNE  # type: ignore[misc]
    login: Any
    avatar_url: Any


class _Repo(TypedDict, total=False):
    __pydantic_config__ = _PRUNE  # type: ignore[misc]
    id: Any
    name: Any
    full_name: Any
    owner: Annotated[_User | Any, _AS_IS]
    description: Any
    private: Any
    default_branch: Any
    language: Any
    stargazers_count: Any
    forks_count: Any
    html_url: Any
    updated_at: Any


class _Ref(TypedDict, total=False):
    __pydantic_config__ = _PRUNE  # type: ignore[misc]
    ref: Any
    sha: Any
    repo: Annotated[_Repo | Any, _AS_IS]


class _PullRequest(TypedDict, total=False):
    __pydantic_config__ = _PRUNE  # type: ignore[misc]
    number: Any
    id: Any
    title: Any
    body: Any
    user: Annotated[_User | Any, _AS_IS]
    head: Annotated[_Ref | Any, _AS_IS]
    base: Annotated[_Ref | Any, _AS_IS]
    draft: Any
    state: Any
    merged: Any
    merged_at: Any
    html_url: Any
    changed_files: Any
    additions: Any
    deletions: Any
    created_at: Any
    updated_at: Any
    closed_at: Any


class _Payload(TypedDict, total=False):
    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]
    repository: Annotated[_Repo | Any, _AS_IS]
    sender: Annotated[_User | Any, _AS_IS]
    pull_request: Annotated[_PullRequest | Any, _AS_IS]


_PAYLOAD = TypeAdapter(_Payload)


def load_payload(text: str | bytes | bytearray) -> dict[str, Any]:
    """A payload's JSON with what parse() needs of it; ValueError when it is not a JSON object.

    The raw text, not this, is what raw_events keeps.
    """
    try:
        return dict(_PAYLOAD.validate_json(text))
    except ValueError:
        # Not JSON, or not an object: the plain parser's error says which and where.
        payload = pydantic_core.from_json(text)
        if not isinstance(payload, dict):
            raise ValueError("payload is not a JSON object") from None
        return payload


# Where each fact comes from in GitHub's payload, for the reason a delivery is not applied.
_SOURCE = {
    RepoFacts: ("repository", {"github_id": "id", "is_private": "private",
                               "stars": "stargazers_count", "forks": "forks_count",
                               "owner": "owner.login", "owner_avatar": "owner.avatar_url"}),
    PrFacts: ("pull_request", {"head_sha": "head.sha", "github_id": "id", "author": "user.login",
                               "author_avatar": "user.avatar_url", "head_ref": "head.ref",
                               "base_ref": "base.ref", "is_draft": "draft"}),
    ReviewFacts: ("review", {"review_id": "id", "reviewer": "user.login",
                             "commit_sha": "commit_id", "pr_number": "pull_request.number"}),
    BuildFacts: ("", {"commit_sha": "head_sha", "branch": "head_branch", "url": "html_url",
                      "triggered_by": "actor.login", "workflow_name": "name"}),
}  # fmt: skip
# Longest text a fact may have, in characters: identifiers that are index keys stay well
# inside a btree entry (2,700 bytes at 4 bytes a character); other text, but bodies, within
# what a person or tool would ever send. Longer is no payload GitHub sends.
_KEY_TEXT = {"full_name": 255, "name": 255, "owner": 255, "head_sha": 64, "commit_sha": 64,
             "external_id": 600, "rerun_key": 600, "workflow_name": 600}  # fmt: skip
_UNBOUNDED_TEXT = frozenset({"body", "description"})
_MAX_TEXT = 4096
# Integers the database keeps in a bigint; every other integer fact is an integer column.
_BIGINT_FACTS = frozenset({"github_id", "review_id"})
_INT32 = 2**31 - 1
_INT64 = 2**63 - 1
_FACT_TYPES: dict[type, list[tuple[str, tuple[type, ...]]]] = {}


def _fact_types(cls: type) -> list[tuple[str, tuple[type, ...]]]:
    """(field, the types its value may have) of a facts dataclass, worked out once."""
    if cls not in _FACT_TYPES:
        import types
        import typing

        plan = []
        for name, hint in typing.get_type_hints(cls).items():
            origin = typing.get_origin(hint)
            if origin is None:
                options: tuple[Any, ...] = (hint,)
            elif origin in (typing.Union, types.UnionType):
                options = typing.get_args(hint)
            else:  # a collection (the tuples of PR references, cleared fields)
                continue
            kinds = tuple(o for o in options if o in (str, int, bool, datetime))
            if kinds:
                plan.append((name, kinds))
        _FACT_TYPES[cls] = plan
    return _FACT_TYPES[cls]


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
             int: "a number", float: "a number"}  # fmt: skip
    return names.get(type(value), type(value).__name__)


def _check_types(facts: Any, event: str) -> None:
    """Raise PayloadError naming the payload field of a fact of the wrong type or range, so
    nothing of a delivery GitHub sent in a shape we do not know reaches the database."""
    cls = type(facts)
    prefix, renamed = _SOURCE[cls]
    where = prefix or event
    for name, kinds in _fact_types(cls):
        value = getattr(facts, name)
        if value is None:
            continue
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if ok and isinstance(value, int) and not isinstance(value, bool):
            ok = -_INT64 <= value <= (_INT64 if name in _BIGINT_FACTS else _INT32)
            if ok and name not in _BIGINT_FACTS:
                ok = value >= -_INT32 - 1
            if not ok:
                raise PayloadError(f"{where}.{renamed.get(name, name)}: {value} is out of range")
        if ok and isinstance(value, str) and name not in _UNBOUNDED_TEXT:
            longest = _KEY_TEXT.get(name, _MAX_TEXT)
            if len(value) > longest:
                raise PayloadError(
                    f"{where}.{renamed.get(name, name)}: longer than {longest} characters"
                )
        if not ok:
            wanted = " or ".join(_json_type(k()) if k is not datetime else "a timestamp"
                                 for k in kinds)  # fmt: skip
            raise PayloadError(
                f"{where}.{renamed.get(name, name)}: expected {wanted}, got {_json_type(value)}"
            )


def _checked(delivery: Delivery) -> Delivery:
    for facts in (delivery.repo, *delivery.extra_repos, delivery.pr, delivery.review,
                  delivery.rerun):  # fmt: skip
        if facts is not None:
            _check_types(facts, delivery.event)
    for build in delivery.builds:
        _check_types(build, delivery.event)
        for ref in build.pr_refs:
            _check_types(ref, delivery.event)
    return delivery


def parse(event: str, payload: dict[str, Any]) -> Delivery:
    """Facts of one delivery; unknown events come back with ignored=True. PayloadError names
    what a payload lacks, or a field whose type or range the facts cannot take."""
    try:
        return _checked(_parse(event, payload))
    except PayloadError:
        raise
    except Exception as exc:
        # A field of another shape than GitHub documents, read before the facts check: the
        # delivery is kept unapplied, whatever the error (an OverflowError from infinity too).
        raise PayloadError(
            f"{event}: a field has an unexpected shape ({type(exc).__name__}: {_shown(str(exc))})"
        ) from None


def _parse(event: str, payload: dict[str, Any]) -> Delivery:
    if not isinstance(payload, dict):
        raise PayloadError("payload is not a JSON object")
    action = _text(payload, "action", "payload")
    delivery = Delivery(event=event, action=action, repo=_repo(payload.get("repository")))
    if event not in ACTED_ON:
        delivery.ignored = True
        return delivery
    if event == "pull_request":
        data = payload.get("pull_request")
        if not isinstance(data, dict):
            raise PayloadError("pull_request object missing")
        delivery.pr = _pr(data, action)
    elif event == "pull_request_review":
        data = payload.get("pull_request")
        review = payload.get("review")
        if not isinstance(data, dict) or not isinstance(review, dict):
            raise PayloadError("pull_request_review needs pull_request and review")
        # The review's PR object is a real snapshot; the timestamp guard decides if it is news.
        pr = _pr(data, None)
        delivery.pr = pr
        reviewer, _ = _login(review.get("user"))
        state = (_text(review, "state", "review") or "").lower()
        if action == "dismissed":
            state = "dismissed"
        delivery.review = ReviewFacts(
            pr_number=pr.number,
            review_id=_integer(review, "id", "review") or 0,
            reviewer=reviewer or "",
            state=state,
            commit_sha=review.get("commit_id"),
            submitted_at=ts(review.get("submitted_at")),
        )
    elif event == "workflow_run":
        delivery.builds = _workflow_run(payload)
    elif event == "workflow_job":
        delivery.builds = _workflow_job(payload)
    elif event == "check_run" and action == "rerequested" and _rerun(payload) is not None:
        delivery.rerun = _rerun(payload)
    elif event in ("check_suite", "check_run"):
        delivery.builds = _check(payload, event)
    elif event == "status":
        delivery.builds = _status(payload)
    elif event == "repository" and action in ("renamed", "transferred"):
        changes = payload.get("changes") or {}
        if action == "renamed":
            old_name = ((changes.get("repository") or {}).get("name") or {}).get("from")
            if old_name and delivery.repo:
                delivery.renamed_from = f"{delivery.repo.owner}/{old_name}"
        else:
            owner = (changes.get("owner") or {}).get("from") or {}
            old_owner = (owner.get("user") or owner.get("organization") or {}).get("login")
            if old_owner and delivery.repo:
                delivery.renamed_from = f"{old_owner}/{delivery.repo.name}"
    elif event in ("installation", "installation_repositories"):
        for key in ("repositories", "repositories_added"):
            for item in payload.get(key) or []:
                repo = _repo(item, complete=False)
                if repo is not None:
                    delivery.extra_repos.append(repo)
        delivery.installation = _installation(payload, event, action, delivery.extra_repos)
    if event in ("deployment", "deployment_status", "push", "workflow_run"):
        delivery.dora = dora_facts(event, payload)
    return delivery


def _rerun(p: dict[str, Any]) -> PrFacts | None:
    """The PR whose FlowLens check GitHub asked to run again (None: another app's check, or
    a check of no PR of this repository)."""
    item = _obj(p.get("check_run"))
    if item.get("name") != CHECK_NAME:
        return None
    app = _obj(item.get("app")).get("id")
    if OWN_APP_ID is not None and app is not None and app != OWN_APP_ID:
        return None  # another App's check of that name (a staging FlowLens, say)
    refs = _pr_refs(item.get("pull_requests"), _obj(p.get("repository")).get("id"))
    return refs[0] if refs else None


def _installation(
    p: dict[str, Any], event: str, action: str | None, added: list[RepoFacts]
) -> InstallationFacts | None:
    item = _obj(p.get("installation"))
    installation_id = item.get("id")
    if isinstance(installation_id, bool) or not isinstance(installation_id, int):
        return None
    account = _obj(item.get("account")).get("login")
    removed = tuple(
        str(r["full_name"]) for r in p.get("repositories_removed") or []
        if isinstance(r, dict) and isinstance(r.get("full_name"), str)
    )  # fmt: skip
    return InstallationFacts(
        installation_id=installation_id,
        action=f"{event}.{action}",
        account=account if isinstance(account, str) else None,
        added=tuple(r.full_name for r in added),
        removed=removed,
    )
