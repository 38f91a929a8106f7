"""The API service: REST reads, the change-feed tailer and the WebSocket hub."""

from flowlens.api.app import create_app

__all__ = ["create_app"]
