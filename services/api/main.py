"""API service entry point: `uvicorn services.api.main:app`."""

from pathlib import Path

from flowlens import logs
from flowlens.api import create_app
from flowlens.serving import NOSNIFF, SecurityHeaders, dashboard
from flowlens.settings import ApiSettings

settings = ApiSettings.from_env()
logs.setup("api", settings.log_format, settings.log_level)
app = create_app(settings)
# Outermost: every answer, errors and CORS preflights included, says nosniff.
app.add_middleware(SecurityHeaders, headers=NOSNIFF)

# The dashboard, mounted last so that /api, /ws, /healthz and /docs win.
STATIC = Path(__file__).parent / "static"
if STATIC.is_dir():
    app.mount("/", dashboard(STATIC), name="dashboard")
