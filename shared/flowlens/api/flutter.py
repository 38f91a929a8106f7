"""The shipped FlowLens Flutter app's API under /flutter: a thin mapping over the main API's
queries (flowlens.api.routes) and change feed (the same hub, another message shape)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import JSONResponse, Response
from starlette.websockets import WebSocket

from flowlens import flutter
from flowlens.api.routes import (
    ERRORS,
    ApiError,
    database_up,
    insight_rows,
    ok,
    pr_rows,
    require_token,
    serve_socket,
    services,
)
from flowlens.api.schemas import (
    Error,
    FlutterInsight,
    FlutterPipeline,
    FlutterPullRequest,
    FlutterRepository,
    FlutterStatus,
)
from flowlens.db import Tx

PREFIX = "/flutter"
# The app asks for whole lists; a page this long covers a team's open work, and bounds the
# answer (?limit= raises it to 1000).
DEFAULT_LIMIT = 200

RepositoryIdParam = Annotated[
    str | None,
    Query(
        description="A repository id from /flutter/api/repositories; others answer 400, "
        "unknown ids 404.",
        json_schema_extra={"pattern": "^[0-9]{1,18}$"},
    ),
]
LimitParam = Annotated[int, Query(ge=1, le=1000, description="At most this many items.")]

router = APIRouter(
    prefix=f"{PREFIX}/api", dependencies=[Depends(require_token)], responses=ERRORS,
    tags=["flutter"],
)  # fmt: skip
status_router = APIRouter(prefix=PREFIX, tags=["flutter"])


async def repository_filter(tx: Tx, value: str | None) -> int | None:
    """The repository id filter (None when absent); 400 when not an id, 404 when unknown."""
    if value is None or value == "":
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise ApiError(400, f"repository_id must be an id from /flutter/api/repositories, "
                            f"got {value[:40]!r}")  # fmt: skip
    rid = int(value)
    if await tx.one("api_repository_known", repository_id=rid) is None:
        raise ApiError(404, f"no repository with id {rid}")
    return rid


@status_router.get(
    "/",
    response_model=FlutterStatus,
    responses={503: {"model": Error, "description": "The database does not answer"}},
    summary="The app's health check",
)
async def app_status(request: Request) -> Response:
    """{"status": "online"} when the database answers (never needs a token), else 503."""
    if not await database_up(request):
        return JSONResponse({"error": "database unavailable"}, status_code=503)
    return ok({"status": "online", "service": "FlowLens API"})


@router.get("/repositories", response_model=list[FlutterRepository], summary="Repositories")
async def list_repositories(request: Request) -> Response:
    """Every repository, most recently active first."""
    async with services(request).db.transaction() as tx:
        rows = await tx.all("api_repositories", repository_id=None, limit=10_000)
    return ok([flutter.repository(row) for row in rows])


@router.get("/pull-requests", response_model=list[FlutterPullRequest], summary="Pull requests")
async def list_pull_requests(
    request: Request, repository_id: RepositoryIdParam = None, limit: LimitParam = DEFAULT_LIMIT
) -> Response:
    """Pull requests of every state, most recently updated first."""
    async with services(request).db.transaction() as tx:
        rows = await pr_rows(tx, await repository_filter(tx, repository_id), None, limit, 0)
    return ok([flutter.pull_request(row) for row in rows])


@router.get("/insights", response_model=list[FlutterInsight], summary="Latest insight per PR")
async def list_insights(
    request: Request, repository_id: RepositoryIdParam = None, limit: LimitParam = DEFAULT_LIMIT
) -> Response:
    """The newest insight of each recently updated PR, newest first (one per PR: the app keeps
    the last one it reads for each)."""
    async with services(request).db.transaction() as tx:
        rid = await repository_filter(tx, repository_id)
        rows = await tx.all("api_latest_insights", repository_id=rid, limit=limit)
    return ok([flutter.insight(row) for row in rows])


@router.get("/insights/{pr_number}", response_model=list[FlutterInsight], summary="A PR's insights")
async def pr_insights(
    request: Request,
    pr_number: Annotated[int, Path(ge=1, le=2**31 - 1)],
    repository_id: RepositoryIdParam = None,
) -> Response:
    """A PR's insights, newest first; 404 when there is no such PR."""
    async with services(request).db.transaction() as tx:
        rid = await repository_filter(tx, repository_id)
        where = f" in repository {rid}" if rid is not None else ""
        rows = await insight_rows(tx, pr_number, rid, where)
    return ok([flutter.insight(row) for row in rows])


@router.get("/pipelines", response_model=list[FlutterPipeline], summary="Pipeline state per PR")
async def list_pipelines(
    request: Request, repository_id: RepositoryIdParam = None, limit: LimitParam = DEFAULT_LIMIT
) -> Response:
    """Each recently updated PR's four pipeline fields and the history of their changes."""
    async with services(request).db.transaction() as tx:
        rows = await pr_rows(tx, await repository_filter(tx, repository_id), None, limit, 0)
        history: dict[int, list[dict[str, Any]]] = {row["id"]: [] for row in rows}
        if rows:
            for event in await tx.all(
                "api_pr_history", pr_ids=list(history), per_pr=flutter.HISTORY_ROWS + 1
            ):
                history[event["pull_request_id"]].append(event)
    return ok([flutter.pipeline(row, history[row["id"]]) for row in rows])


async def websocket_endpoint(websocket: WebSocket) -> None:
    """/flutter/ws[?repo=owner/name...][&token=...]: {repo_id, pr_number, state} per change."""
    await serve_socket(websocket, app=True)
