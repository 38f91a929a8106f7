"""Ingest function: GitHub webhooks (and CI build reports) in, durable state out."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from flowlens import logs
from flowlens.ingest.app import IngestHandler
from flowlens.serving import settle_gc, spread_connections
from flowlens.settings import IngestSettings

settings = IngestSettings.from_env()
logs.setup("ingest", settings.log_format, settings.log_level)
spread_connections()
handler = IngestHandler(settings)
settle_gc()


@functions_framework.aio.http
async def ingest(request: Request) -> Response:
    """Entry point (target `ingest`)."""
    return await handler(request)
