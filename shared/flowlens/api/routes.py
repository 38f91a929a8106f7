"""REST endpoints of the contract (docs/API.md), the health check and the WebSocket."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import JSONResponse, Response
from starlette.websockets import WebSocket

from flowlens import dora, serialize
from flowlens.api import auth
from flowlens.api.feed import FeedTailer
from flowlens.api.hub import CLOSE_POLICY, CLOSE_SLOW, Hub, close_quietly
from flowlens.api.schemas import (
    Build,
    DoraMetrics,
    Error,
    Health,
    Insight,
    MetricsSummary,
    PullRequest,
    Repository,
    RiskMetrics,
)
from flowlens.db import Database, Tx
from flowlens.model import RISK
from flowlens.names import REPO_NAME
from flowlens.settings import ApiSettings

HEALTH_TIMEOUT_SECONDS = 2.0
# How long a new socket waits for the feed reader's first pass (a database slow or down at
# start-up) before it is closed with 1013 (reconnect).
FEED_READY_TIMEOUT_SECONDS = 10.0


@dataclass
class Services:
    """What the handlers of one app instance share."""

    settings: ApiSettings
    db: Database
    hub: Hub
    tailer: FeedTailer


class ApiError(Exception):
    """An answer other than 2xx, rendered as {"error": message}."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def services(request: Request) -> Services:
    """The app instance's shared services."""
    svc: Services = request.app.state.flowlens
    return svc


def require_token(request: Request) -> None:
    """401 unless API_TOKENS is unset or the request carries one of them."""
    if not auth.allowed(request, services(request).settings.api_token_list):
        raise ApiError(401, "missing or invalid bearer token (Authorization: Bearer <token>)")


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Error, "description": text}
    for code, text in [
        (400, "Malformed parameter (e.g. repo not owner/name)"),
        (401, "API_TOKENS is set and no valid bearer token was sent"),
        (404, "No such repository, pull request or build"),
        (422, "A parameter failed validation"),
        (503, "The database is unavailable"),
    ]
}

# The patterns are documented, not enforced by FastAPI: a malformed value answers 400 with
# the contract's message (repository_id below), and fuzzers know which values are valid.
RepoParam = Annotated[
    str | None,
    Query(
        description="Repository as owner/name; malformed answers 400, unknown 404.",
        json_schema_extra={"pattern": f"^{REPO_NAME.pattern}$"},
    ),
]
LimitParam = Annotated[int, Query(ge=1, le=1000, description="Page size.")]
# An offset is read and thrown away row by row: past a few pages, a client filters instead.
MAX_OFFSET = 10_000
OffsetParam = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip.")]


router = APIRouter(prefix="/api", dependencies=[Depends(require_token)], responses=ERRORS)


def ok(content: Any) -> Response:
    """A 200 JSON answer, already in the contract's shape (no model validation per request)."""
    return JSONResponse(content)


async def repository_id(tx: Tx, repo: str | None) -> int | None:
    """The id of `repo` (None when no filter); 400 when malformed, 404 when unknown."""
    if repo is None or repo == "":
        return None
    if not REPO_NAME.fullmatch(repo):
        raise ApiError(400, f"repo must be owner/name, got {repo!r}")
    found = await tx.value("api_repository_id", full_name=repo)
    if found is None:
        raise ApiError(404, f"no repository {repo}")
    return int(found)


@router.get("/prs", response_model=list[PullRequest], summary="Pull requests")
async def list_prs(
    request: Request,
    repo: RepoParam = None,
    state: Annotated[
        Literal["open", "closed", "merged", "all"],
        Query(description="Which pull requests; `all` (the default) includes closed and merged."),
    ] = "all",
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 100,
    offset: OffsetParam = 0,
    description: Annotated[
        Literal["short", "none"],
        Query(
            description="`short` (the default): each description cut to 1,000 characters; "
            "`none`: an empty one, for clients that do not show it.",
        ),
    ] = "short",
) -> Response:
    """Pull requests, most recently updated (updatedAt) first. Each description is cut to
    1,000 characters; GET /api/prs/{number} has the whole text."""
    async with services(request).db.transaction() as tx:
        rid = await repository_id(tx, repo)
        rows = await pr_rows(tx, rid, None if state == "all" else state, limit, offset)
    items = [serialize.pr_item(row, row["repository"]) for row in rows]
    if description == "none":
        for item in items:
            item["description"] = ""
    return ok(items)


@router.get("/prs/{pr_number}", response_model=PullRequest, summary="One pull request")
async def get_pr(
    request: Request,
    pr_number: Annotated[int, Path(ge=1, le=2**31 - 1)],
    repo: RepoParam = None,
) -> Response:
    """One PR with its whole description; without `repo`, the one PR of that number (400
    when several repositories have one)."""
    async with services(request).db.transaction() as tx:
        rid = await repository_id(tx, repo)
        rows = await tx.all("api_pr", number=pr_number, repository_id=rid)
    if not rows:
        raise ApiError(404, f"no pull request #{pr_number}" + (f" in {repo}" if repo else ""))
    if len(rows) > 1:
        raise ApiError(400, f"several repositories have a #{pr_number}: give repo=owner/name")
    return ok(serialize.pr_item(rows[0], rows[0]["repository"], full=True))


async def pr_rows(
    tx: Tx, rid: int | None, state: str | None, limit: int, offset: int
) -> list[dict[str, Any]]:
    """A page of PR rows (with `repository`), most recently updated first."""
    if rid is None:
        return await tx.all("api_list_prs", state=state, limit=limit, offset=offset)
    return await tx.all(
        "api_list_repository_prs", repository_id=rid, state=state, limit=limit, offset=offset
    )


@router.get("/insights/{pr_number}", response_model=list[Insight], summary="AI insights of a PR")
async def list_insights(
    request: Request,
    pr_number: Annotated[int, Path(ge=1, le=2**31 - 1)],
    repo: RepoParam = None,
) -> Response:
    """A PR's insights, newest first; without `repo`, that PR number in every repository."""
    async with services(request).db.transaction() as tx:
        rid = await repository_id(tx, repo)
        rows = await insight_rows(tx, pr_number, rid, f" in {repo}" if repo else "")
    return ok([serialize.insight_item(row, row["repository"]) for row in rows])


async def insight_rows(tx: Tx, number: int, rid: int | None, where: str) -> list[dict[str, Any]]:
    """A PR's insight rows, newest first; 404 when no such PR exists (`where` names the
    repository in the message)."""
    rows = await tx.all("api_insights_for_pr", number=number, repository_id=rid)
    if not rows and await tx.one("api_pr_exists", number=number, repository_id=rid) is None:
        raise ApiError(404, f"no pull request #{number}{where}")
    return rows


@router.get("/repository", response_model=Repository, summary="One repository")
async def get_repository(request: Request, repo: RepoParam = None) -> Response:
    """The named repository, or without `repo` the most recently active one."""
    async with services(request).db.transaction() as tx:
        rid = await repository_id(tx, repo)
        rows = await tx.all("api_repositories", repository_id=rid, limit=1)
    if not rows:
        raise ApiError(404, "no repositories yet")
    return ok(serialize.repository_item(rows[0]))


@router.get("/repositories", response_model=list[Repository], summary="All repositories")
async def list_repositories(request: Request) -> Response:
    """Every repository, most recently active first."""
    async with services(request).db.transaction() as tx:
        rows = await tx.all("api_repositories", repository_id=None, limit=10_000)
    return ok([serialize.repository_item(row) for row in rows])


@router.get("/builds", response_model=list[Build], summary="Builds")
async def list_builds(
    request: Request,
    repo: RepoParam = None,
    # PostgreSQL text cannot hold NUL: refused here rather than failing in the query.
    branch: Annotated[str | None, Query(max_length=255, pattern="^[^\x00]*$")] = None,
    status: Annotated[Literal["queued", "running", "success", "failed"] | None, Query()] = None,
    limit: LimitParam = 50,
    offset: OffsetParam = 0,
) -> Response:
    """Builds, newest first."""
    async with services(request).db.transaction() as tx:
        rid = await repository_id(tx, repo)
        rows = await tx.all(
            "api_list_builds",
            repository_id=rid,
            branch=branch or None,
            status=status,
            limit=limit,
            offset=offset,
        )
    return ok([serialize.build_item(row) for row in rows])


@router.get("/builds/{build_id}", response_model=Build, summary="One build")
async def get_build(
    request: Request, build_id: Annotated[int, Path(ge=1, le=2**63 - 1)]
) -> Response:
    """One build by id."""
    async with services(request).db.transaction() as tx:
        row = await tx.one("api_build_by_id", id=build_id)
    if row is None:
        raise ApiError(404, f"no build {build_id}")
    return ok(serialize.build_item(row))


@router.get("/metrics/summary", response_model=MetricsSummary, summary="Build metrics")
async def metrics_summary(
    request: Request,
    repo: RepoParam = None,
    days: Annotated[int, Query(ge=1, le=365, description="Window in days.")] = 7,
) -> Response:
    """Build counts and rates of the last `days` days; the last build whatever its age."""
    async with services(request).db.transaction() as tx:
        rid = await repository_id(tx, repo)
        stats = await tx.one("api_build_metrics", repository_id=rid, days=days)
        last = await tx.one("api_last_build", repository_id=rid)
    assert stats is not None
    finished = int(stats["successes"]) + int(stats["failures"])
    avg = stats["avg_duration"]
    return ok(
        {
            "windowDays": days,
            "buildCount": int(stats["build_count"]),
            "successRate": round(stats["successes"] / finished, 4) if finished else 0.0,
            "failureRate": round(stats["failures"] / finished, 4) if finished else 0.0,
            "avgBuildTimeSeconds": round(float(avg), 3) if avg is not None else None,
            "lastBuildStatus": last["status"] if last else None,
            "lastUpdated": serialize.iso(last["updated_at"]) if last else None,
        }
    )


# Outcome (as the API names it) -> the column of api_risk_outcomes that counts it.
RISK_OUTCOMES = {
    "buildFailed": "build_failed",
    "closedUnmerged": "closed_unmerged",
    "reverted": "reverted",
    "followUp": "follow_up",
}


@router.get("/metrics/risk", response_model=RiskMetrics, summary="Risk read calibration")
async def metrics_risk(
    request: Request,
    repo: RepoParam = None,
    days: Annotated[int, Query(ge=1, le=365, description="Window in days.")] = 30,
) -> Response:
    """Per risk level: the heads analysed in the last `days` days, and how many of them (and
    what share) had their build fail, were closed unmerged, were reverted, or were followed up
    by a change of the same files."""
    async with services(request).db.transaction() as tx:
        rid = await repository_id(tx, repo)
        rows = {r["risk_level"]: r for r in await tx.all("api_risk_outcomes", repository_id=rid,
                                                         days=days)}  # fmt: skip
    levels = []
    for level in RISK:
        row = rows.get(level)
        count = int(row["insights"]) if row else 0
        outcomes = {}
        for name, column in RISK_OUTCOMES.items():
            met = int(row[column]) if row else 0
            outcomes[name] = {"count": met, "rate": round(met / count, 4) if count else None}
        levels.append({"riskLevel": level, "count": count, "outcomes": outcomes})
    return ok({"windowDays": days, "outcomes": list(RISK_OUTCOMES), "levels": levels})


@router.get("/metrics/dora", response_model=DoraMetrics, summary="DORA's four keys")
async def metrics_dora(
    request: Request,
    repo: RepoParam = None,
    # PostgreSQL text cannot hold NUL: refused here rather than failing in the query.
    environment: Annotated[
        str,
        Query(
            min_length=1,
            max_length=255,
            pattern="^[^\x00]+$",
            description="Deployment environment.",
        ),
    ] = "production",
    days: Annotated[int, Query(ge=1, le=365, description="Window in days.")] = 30,
) -> Response:
    """Deployment frequency, lead time for changes, change failure rate and failed deployment
    recovery time of `environment` over the last `days` days, with a daily series (the exact
    definitions: docs/METRICS.md)."""
    async with services(request).db.transaction() as tx:
        rid = await repository_id(tx, repo)
        now = await tx.value("dora_now")
        start = now - timedelta(days=days)
        deployments = await tx.all("dora_deployments", repository_id=rid,
                                   environment=environment, start=start, now=now)  # fmt: skip
        merged: list[dict[str, Any]] = []
        # Only repositories with a success in the window ship anything: what was merged since
        # their last success before it (one without any ships everything merged until then).
        kinds = {d["repository_id"]: d["kind"] for d in deployments if d["outcome"] == "success"}
        shipping = sorted(kinds)
        if shipping:
            before = await tx.all("dora_last_successes", repository_ids=shipping,
                                  kinds=[kinds[r] for r in shipping], environment=environment,
                                  start=start)  # fmt: skip
            deployments += before
            since = {d["repository_id"]: d["at"] for d in before}
            merged = await tx.all("dora_merged_prs", repository_ids=shipping, now=now,
                                  sinces=[since.get(r) for r in shipping])  # fmt: skip
    return ok(dora.compute(deployments, merged, now=now, days=days, environment=environment))


health_router = APIRouter()


@health_router.get(
    "/healthz",
    response_model=Health,
    responses={503: {"model": Error, "description": "The database does not answer"}},
    summary="Liveness and database check",
)
# Cloud Run's front end answers some paths ending in "z" itself (its known issues name
# /healthz): checks from outside use /health.
@health_router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Error, "description": "The database does not answer"}},
    summary="Liveness and database check (for checks from outside Cloud Run)",
)
async def healthz(request: Request) -> Response:
    """200 when the database answers, 503 otherwise (never needs a token)."""
    if not await database_up(request):
        return JSONResponse({"error": "database unavailable"}, status_code=503)
    return ok({"status": "ok", "clients": services(request).hub.client_count})


async def database_up(request: Request) -> bool:
    """Whether the database answers within HEALTH_TIMEOUT_SECONDS."""
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_SECONDS):
            return await services(request).db.ping()
    except TimeoutError:
        return False


async def websocket_endpoint(websocket: WebSocket) -> None:
    """/ws[?repo=owner/name...][&token=...]: pr_update messages from now on."""
    await serve_socket(websocket, app=False)


async def serve_socket(websocket: WebSocket, *, app: bool) -> None:
    """Check and serve one socket: pr_update messages, or the Flutter app's (`app`)."""
    svc: Services = websocket.app.state.flowlens
    # Not accepted before the feed reader's first pass: a client loads REST once its socket
    # opens, and that pass takes everything already in the feed as history, so a change
    # committed in between would reach neither.
    # The subprotocol the client offered beside its token, selected (a browser fails the
    # handshake unless one it offered is).
    protocol = auth.SUBPROTOCOL if auth.SUBPROTOCOL in auth.subprotocols(websocket) else None
    try:
        async with asyncio.timeout(FEED_READY_TIMEOUT_SECONDS):
            await svc.tailer.ready.wait()
    except TimeoutError:
        await websocket.accept(subprotocol=protocol)
        await close_quietly(websocket, CLOSE_SLOW, "change feed not ready; reconnect")
        return
    # Accepted before the checks, so that the client sees the 1008 close code rather than a
    # bare 403.
    await websocket.accept(subprotocol=protocol)
    if not auth.allowed(websocket, svc.settings.api_token_list, socket=True):
        await close_quietly(websocket, CLOSE_POLICY, "missing or invalid token")
        return
    if not auth.origin_ok(websocket, svc.settings.cors_origin_list):
        await close_quietly(websocket, CLOSE_POLICY, "origin not allowed (CORS_ORIGINS)")
        return
    repos = websocket.query_params.getlist("repo")
    bad = [r for r in repos if not REPO_NAME.fullmatch(r)]
    if bad:
        await close_quietly(websocket, CLOSE_POLICY, f"repo must be owner/name: {bad[0]}")
        return
    await svc.hub.serve(websocket, repos, app=app)
