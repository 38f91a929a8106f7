"""The shipped FlowLens Flutter app's parsing, emulated line for line in Python.

The app's `fromApiJson` factories (models/*.dart), `WebSocketService._onMessage` and
`PRProvider`'s matching and status mapping are the specification of /flutter. Each function
here follows one of them with Dart's semantics: `x as T` throws unless x is a T (`as T?` lets
null through), `a ?? b`, an implicit downcast of a `dynamic` value into a typed parameter,
`DateTime.parse` (throws) and `DateTime.tryParse` (null) with Dart's own grammar, `firstWhere`
(throws when nothing matches). A field renamed, or sent with another type, raises here where
the app would throw and show an error instead of its list.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any


class DartTypeError(TypeError):
    """Dart's TypeError: a cast (`as T`) or an implicit downcast failed."""


class DartFormatError(ValueError):
    """Dart's FormatException (DateTime.parse)."""


class DartStateError(RuntimeError):
    """Dart's StateError (firstWhere with no match)."""


_DART_TYPES: dict[str, tuple[type, ...]] = {
    "String": (str,),
    "int": (int,),
    "double": (float,),
    "num": (int, float),
    "bool": (bool,),
    "List": (list,),
    "Map": (dict,),
}


def cast(value: Any, dart_type: str) -> Any:
    """`value as T` (T may end in `?`). JSON numbers: integral literals decode to int."""
    nullable = dart_type.endswith("?")
    name = dart_type.rstrip("?")
    if value is None:
        if nullable:
            return None
        raise DartTypeError(f"type 'Null' is not a subtype of type '{name}' in type cast")
    allowed = _DART_TYPES[name]
    # Python's bool is an int; Dart's is not.
    if isinstance(value, bool) and bool not in allowed:
        raise DartTypeError(f"type 'bool' is not a subtype of type '{name}' in type cast")
    if not isinstance(value, allowed):
        raise DartTypeError(
            f"type '{type(value).__name__}' is not a subtype of type '{name}' in type cast"
        )
    return value


def coalesce(*operands: Any) -> Any:
    """`a ?? b ?? c`: each operand is a value or a zero-argument callable, evaluated only when
    every operand before it was null (Dart evaluates the right side of ?? lazily)."""
    for operand in operands:
        value = operand() if callable(operand) else operand
        if value is not None:
            return value
    return None


# sdk/lib/core/date_time.dart, DateTime._parseFormat.
_DART_DATE = re.compile(
    r"^([+-]?\d{4,6})-?(\d\d)-?(\d\d)"
    r"(?:[ T](\d\d)(?::?(\d\d)(?::?(\d\d)(?:[.,](\d+))?)?)?"
    r"( ?[zZ]| ?([-+])(\d\d)(?::?(\d\d))?)?)?$"
)


def date_time_parse(text: Any) -> datetime:
    """DateTime.parse(String): FormatException unless Dart's grammar matches. Out-of-range
    parts roll over as in Dart (month 13 is January of the next year). A time without an offset
    is local time in the app: it comes back naive, so it never equals a time FlowLens meant."""
    text = cast(text, "String")
    match = _DART_DATE.fullmatch(text)
    if match is None:
        raise DartFormatError(f"Invalid date format {text}")
    year, month, day, hour, minute, second, fraction, zone, sign, zh, zm = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    months = int(year) * 12 + int(month) - 1
    try:
        base = datetime(months // 12, months % 12 + 1, 1)
    except ValueError:
        raise DartFormatError(f"Time out of range {text}") from None
    moment = base + timedelta(
        days=int(day) - 1, hours=int(hour or 0), minutes=int(minute or 0),
        seconds=int(second or 0), microseconds=micro,
    )  # fmt: skip
    if zone is None:
        return moment
    moment = moment.replace(tzinfo=UTC)
    if sign is not None:
        offset = timedelta(hours=int(zh), minutes=int(zm or 0))
        moment -= offset if sign == "+" else -offset
    return moment


def date_time_try_parse(text: Any) -> datetime | None:
    """DateTime.tryParse(String): null where parse would throw (the argument must be a String)."""
    cast(text, "String")
    try:
        return date_time_parse(text)
    except DartFormatError:
        return None


_DART_INT = re.compile(r"[+-]?(?:[0-9]+|0[xX][0-9a-fA-F]+)")


def int_try_parse(text: str) -> int | None:
    """int.tryParse(String): decimal or 0x hex with an optional sign, whitespace trimmed."""
    text = text.strip()
    if not _DART_INT.fullmatch(text):
        return None
    return int(text, 16 if "x" in text.lower() else 10)


def dart_to_string(value: Any) -> str | None:
    """`value?.toString()` for a decoded JSON value."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return f"{value:.1f}"
    return value if isinstance(value, str) else json.dumps(value)


def downcast(value: Any, dart_type: str) -> Any:
    """A `dynamic` value passed where a typed parameter is declared (an implicit `as T`)."""
    return cast(value, dart_type)


def list_of_strings(value: Any) -> list[str]:
    """List<String>.from(x as List)."""
    return [cast(item, "String") for item in cast(value, "List")]


# -- models/repository.dart


@dataclass(frozen=True)
class Repository:
    id: str | None
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
    languages: list[str]
    stars: int
    forks: int
    html_url: str | None


def repository_from_api_json(j: dict[str, Any]) -> Repository:
    """Repository.fromApiJson."""
    return Repository(
        id=cast(j.get("id"), "String?"),
        name=cast(j.get("name"), "String"),
        full_name=cast(j.get("full_name"), "String"),
        description=coalesce(cast(j.get("description"), "String?"), ""),
        owner=cast(j.get("owner"), "String"),
        owner_avatar=f"https://github.com/{j.get('owner')}.png",
        is_private=cast(j.get("is_private"), "bool"),
        default_branch=cast(j.get("default_branch"), "String"),
        open_prs=cast(j.get("open_prs"), "int"),
        total_prs=cast(j.get("total_prs"), "int"),
        merged_prs=coalesce(cast(j.get("merged_prs"), "int?"), 0),
        closed_prs=coalesce(cast(j.get("closed_prs"), "int?"), 0),
        draft_prs=coalesce(cast(j.get("draft_prs"), "int?"), 0),
        last_activity=date_time_parse(cast(j.get("last_activity"), "String")),
        languages=[coalesce(cast(j.get("language"), "String?"), "Unknown")],
        stars=coalesce(cast(j.get("stars"), "int?"), 0),
        forks=coalesce(cast(j.get("forks"), "int?"), 0),
        html_url=cast(j.get("html_url"), "String?"),
    )


# -- models/pull_request.dart

PR_STATUSES = ("pending", "building", "buildPassed", "buildFailed", "approved", "merged", "closed")
_PRIORITY = {"pending": 1, "building": 2, "buildPassed": 3, "buildFailed": 3, "approved": 4,
             "merged": 5, "closed": 5}  # fmt: skip


def should_override(new: str, other: str) -> bool:
    """PRStatusPriority.shouldOverride (extension on PRStatus)."""
    if new == other:
        return False
    if other in ("merged", "closed"):
        return new in ("merged", "closed")
    if other == "approved":
        return _PRIORITY[new] >= _PRIORITY[other]
    if other in ("buildPassed", "buildFailed"):
        if new == "building":
            return False
        return _PRIORITY[new] > _PRIORITY[other]
    return _PRIORITY[new] >= _PRIORITY[other]


def convert_state_value(state: str) -> str:
    """PullRequest.convertStateValue."""
    return {
        "open": "pending",
        "opened": "pending",
        "building": "building",
        "buildpassed": "buildPassed",
        "buildfailed": "buildFailed",
        "approved": "approved",
        "merged": "merged",
        "closed": "closed",
    }.get(state.lower(), "pending")


def determine_status(basic_state: str, history: list[Any] | None, merged: bool) -> str:
    """PullRequest.determineStatus."""
    if merged or basic_state.lower() == "merged":
        return "merged"
    if basic_state.lower() == "closed":
        return "closed"
    latest = None
    for event in reversed(history or []):
        if isinstance(event, dict):
            name = cast(event.get("state_name"), "String?")
            if name is not None and name not in ("open", "opened"):
                latest = name
                break
    if latest in ("approved", "buildPassed", "buildFailed", "building"):
        return latest
    return convert_state_value(basic_state)


@dataclass(frozen=True)
class PullRequest:
    id: str | None
    repository_id: str | None
    number: int
    title: str
    description: str
    author: str
    author_avatar: str
    commit_sha: str
    repository_name: str
    created_at: datetime
    updated_at: datetime
    status: str
    files_changed: list[str]
    additions: int
    deletions: int
    branch_name: str
    is_draft: bool


def pull_request_from_api_json(j: dict[str, Any]) -> PullRequest:
    """PullRequest.fromApiJson."""
    changed = j.get("changed_files")
    return PullRequest(
        id=cast(j.get("id"), "String?"),
        repository_id=coalesce(
            cast(j.get("repositoryId"), "String?"), lambda: cast(j.get("repo_id"), "String?")
        ),
        number=coalesce(cast(j.get("number"), "int?"), lambda: cast(j.get("pr_number"), "int")),
        title=cast(j.get("title"), "String"),
        description=coalesce(cast(j.get("description"), "String?"), ""),
        author=cast(j.get("author"), "String"),
        author_avatar=coalesce(
            cast(j.get("authorAvatar"), "String?"),
            lambda: cast(j.get("author_avatar"), "String?"),
            "",
        ),
        commit_sha=coalesce(
            cast(j.get("commitSha"), "String?"), lambda: cast(j.get("commit_sha"), "String?"), ""
        ),
        repository_name=coalesce(
            cast(j.get("repositoryName"), "String?"),
            lambda: cast(j.get("repository_name"), "String?"),
            "",
        ),
        created_at=date_time_parse(
            coalesce(
                cast(j.get("createdAt"), "String?"), lambda: cast(j.get("created_at"), "String")
            )
        ),
        updated_at=date_time_parse(
            coalesce(
                cast(j.get("updatedAt"), "String?"), lambda: cast(j.get("updated_at"), "String")
            )
        ),
        status=determine_status(
            coalesce(
                cast(j.get("status"), "String?"), lambda: cast(j.get("state"), "String?"), "pending"
            ),
            cast(j.get("history"), "List?"),
            coalesce(cast(j.get("merged"), "bool?"), False),
        ),
        # A placeholder name per changed file, from the count.
        files_changed=[f"File {i + 1}" for i in range(cast(changed, "int"))]
        if changed is not None
        else [],
        additions=coalesce(cast(j.get("additions"), "int?"), 0),
        deletions=coalesce(cast(j.get("deletions"), "int?"), 0),
        branch_name=coalesce(
            cast(j.get("branchName"), "String?"), lambda: cast(j.get("branch_name"), "String?"), ""
        ),
        is_draft=coalesce(
            cast(j.get("isDraft"), "bool?"), lambda: cast(j.get("is_draft"), "bool?"), False
        ),
    )


# -- models/ai_insight.dart


@dataclass(frozen=True)
class AIInsight:
    id: str
    repository_id: str | None
    pr_number: int
    commit_sha: str
    author: str
    avatar_url: str
    risk_level: str
    summary: str
    recommendation: str
    created_at: datetime
    key_changes: list[str]
    confidence_score: float


def insight_from_api_json(j: dict[str, Any], *, now: datetime) -> AIInsight:
    """AIInsight.fromApiJson (`now` is what DateTime.now() would give)."""

    def parse_date_time(text: str | None) -> datetime:
        if text is None or text == "":
            return now
        try:
            return date_time_parse(text)
        except DartFormatError:
            return now

    risk = coalesce(cast(j.get("risk_level"), "String?"), "medium").lower()
    number = cast(j.get("pr_number"), "num?")
    score = cast(j.get("confidence_score"), "num?")
    return AIInsight(
        id=coalesce(cast(j.get("id"), "String?"), ""),
        repository_id=cast(j.get("repo_id"), "String?"),
        pr_number=int(number) if number is not None else 0,
        commit_sha=coalesce(cast(j.get("commit_sha"), "String?"), ""),
        author=coalesce(cast(j.get("author"), "String?"), ""),
        avatar_url=coalesce(cast(j.get("avatar_url"), "String?"), ""),
        risk_level=risk if risk in ("low", "medium", "high") else "medium",
        summary=coalesce(cast(j.get("summary"), "String?"), ""),
        recommendation=coalesce(cast(j.get("recommendation"), "String?"), ""),
        created_at=parse_date_time(cast(j.get("created_at"), "String?")),
        key_changes=list_of_strings(j["keyChanges"]) if j.get("keyChanges") is not None else [],
        confidence_score=float(score) if score is not None else 0.0,
    )


# -- models/pipeline_run.dart


@dataclass(frozen=True)
class HistoryEvent:
    timestamp: datetime
    field: str
    value: str
    meta: dict[str, Any]


@dataclass(frozen=True)
class PipelineRun:
    id: str
    repo_id: str
    pr_number: int
    commit_sha: str
    author: str
    avatar_url: str
    title: str
    status_pr: str
    status_build: str
    status_approval: str
    status_merge: str
    history: list[HistoryEvent]
    processed: bool
    created_at: datetime
    updated_at: datetime


def history_event_from_json(j: Any, *, now: datetime) -> HistoryEvent:
    """PipelineHistoryEvent.fromJson (j arrives as dynamic: a Map parameter)."""
    j = downcast(j, "Map")
    meta = coalesce(j.get("meta"), {})
    return HistoryEvent(
        timestamp=coalesce(date_time_try_parse(coalesce(j.get("at"), "")), now),
        field=downcast(coalesce(j.get("field"), ""), "String"),
        value=downcast(coalesce(j.get("value"), ""), "String"),
        meta=dict(downcast(meta, "Map")),
    )


def pipeline_from_api_json(j: dict[str, Any], *, now: datetime) -> PipelineRun:
    """PipelineRun.fromApiJson. parseHistory swallows its own errors (an empty history)."""

    def parse_history(text: Any) -> list[HistoryEvent]:
        text = downcast(text, "String")  # the parameter is a String: outside the try
        try:
            items = downcast(json.loads(text), "List")
            return [history_event_from_json(item, now=now) for item in items]
        except Exception:
            return []

    raw_number = j.get("pr_number")
    if isinstance(raw_number, int) and not isinstance(raw_number, bool):
        number = raw_number
    else:
        number = coalesce(int_try_parse(dart_to_string(raw_number) or "0"), 0)
    return PipelineRun(
        id=downcast(coalesce(j.get("id"), ""), "String"),
        repo_id=downcast(coalesce(j.get("repo_id"), ""), "String"),
        pr_number=number,
        commit_sha=downcast(coalesce(j.get("commit_sha"), ""), "String"),
        author=downcast(coalesce(j.get("author"), ""), "String"),
        avatar_url=downcast(coalesce(j.get("avatar_url"), ""), "String"),
        title=downcast(coalesce(j.get("title"), ""), "String"),
        status_pr=downcast(coalesce(j.get("status_pr"), ""), "String"),
        status_build=downcast(coalesce(j.get("status_build"), ""), "String"),
        status_approval=downcast(coalesce(j.get("status_approval"), ""), "String"),
        status_merge=downcast(coalesce(j.get("status_merge"), ""), "String"),
        history=parse_history(coalesce(j.get("history"), "[]")),
        processed=j.get("processed") is True,
        created_at=coalesce(date_time_try_parse(coalesce(j.get("created_at"), "")), now),
        updated_at=coalesce(date_time_try_parse(coalesce(j.get("updated_at"), "")), now),
    )


def overall_status(run: PipelineRun) -> str:
    """PipelineRun.overallStatus."""
    if run.status_merge == "merged":
        return "merged"
    if run.status_build == "buildFailed":
        return "failed"
    if run.status_build == "building":
        return "building"
    if run.status_build == "buildPassed" and run.status_approval == "approved":
        return "ready"
    if run.status_build == "buildPassed":
        return "passed"
    return "pending"


# -- services/websocket_service.dart and providers/pr_provider.dart


@dataclass(frozen=True)
class PRStateUpdate:
    repository_id: str
    pr_number: int
    state: str


def on_message(message: Any) -> PRStateUpdate | None:
    """WebSocketService._onMessage: the update it emits, or None where it drops the message
    (a missing field, or any error it catches)."""
    try:
        data = json.loads(downcast(message, "String"))
        if not isinstance(data, dict):
            raise DartTypeError("not a Map")
        if (
            data.get("repo_id") is None
            or data.get("pr_number") is None
            or data.get("state") is None
        ):
            return None
        return PRStateUpdate(
            repository_id=cast(data["repo_id"], "String"),
            pr_number=cast(data["pr_number"], "int"),
            state=cast(data["state"], "String"),
        )
    except Exception:
        return None


def convert_state(state: str) -> str:
    """PRProvider._handlePRStateUpdate's convertState."""
    return {
        "opened": "pending",
        "building": "building",
        "buildpassed": "buildPassed",
        "buildfailed": "buildFailed",
        "approved": "approved",
        "merged": "merged",
        "closed": "closed",
    }.get(state.lower(), "pending")


class Provider:
    """PRProvider's list and its reaction to socket updates (no Flutter, same rules)."""

    def __init__(self, pull_requests: list[PullRequest], repository_id: str | None) -> None:
        self.pull_requests = list(pull_requests)
        self.current_repository_id = repository_id
        self.fetch_requests: list[tuple[str, int]] = []

    def index_of(self, update: PRStateUpdate) -> int:
        """The listed PR an update is for (-1: none), matched as the provider matches."""
        for i, pr in enumerate(self.pull_requests):
            if pr.repository_id == update.repository_id and pr.number == update.pr_number:
                return i
        return -1

    def handle(self, update: PRStateUpdate) -> bool:
        """_handlePRStateUpdate; returns whether the listed PR's status changed."""
        index = self.index_of(update)
        if index == -1:
            if update.state.lower() == "opened" and self.current_repository_id in (
                None,
                update.repository_id,
            ):
                self.fetch_requests.append((update.repository_id, update.pr_number))
            return False
        new = convert_state(update.state)
        current = self.pull_requests[index]
        if should_override(new, current.status):
            self.pull_requests[index] = replace(current, status=new)
            return True
        return False


def first_where(items: list[Any], test: Any) -> Any:
    """Iterable.firstWhere without orElse."""
    for item in items:
        if test(item):
            return item
    raise DartStateError("No element")
