"""Poller function: invoked by Cloud Scheduler every minute; scans until its budget is spent."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import JSONResponse

from flowlens import logs
from flowlens.poller.service import PollerService, is_wake_up
from flowlens.settings import PollerSettings

settings = PollerSettings.from_env()
logs.setup("poller", settings.log_format, settings.log_level)
service = PollerService(settings)


@functions_framework.aio.http
async def poll(request: Request) -> JSONResponse:
    """Entry point (target `poll`): returns the invocation's JSON summary. Cloud Scheduler
    posts `{}`; ingest's wake-up posts `{"wake": true}` (docs/ARCHITECTURE.md)."""
    return JSONResponse(await service.invoke(wake=await is_wake_up(request)))
