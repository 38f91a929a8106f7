"""API service entry point: `uvicorn services.api.main:app`."""

from pathlib import Path

from starlette.staticfiles import StaticFiles

from flowlens import logs
from flowlens.api import create_app
from flowlens.settings import ApiSettings

settings = ApiSettings.from_env()
logs.setup("api", settings.log_format, settings.log_level)
app = create_app(settings)

# The dashboard, mounted last so that /api, /ws, /healthz and /docs win.
STATIC = Path(__file__).parent / "static"
if STATIC.is_dir():
    app.mount("/", StaticFiles(directory=STATIC, html=True), name="dashboard")
