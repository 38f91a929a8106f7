"""The ingest function's HTTP handling (functions-framework aio.http calls `handle`)."""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from typing import Any
from urllib.parse import parse_qs

import psycopg
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from flowlens import logs
from flowlens.db import Database, DatabaseUnavailable, first_line
from flowlens.github.parse import Delivery, PayloadError, load_payload, parse
from flowlens.github.signature import StreamVerifier, well_formed
from flowlens.ingest.batch import Batcher
from flowlens.ingest.ci import BadCiBody, CiBuild, actions_event, record_ci_build
from flowlens.ingest.store import Item, Outcome, record_unapplied
from flowlens.settings import IngestSettings
from flowlens.wake import Waker

log = logging.getLogger("flowlens.ingest")

MAX_BODY = 25 * 1024 * 1024
WEBHOOK_PATHS = frozenset({"/", "/webhook", "/api/webhook/github"})
CI_PATH = "/api/webhook/github-actions"
_STATUS_CODE = {
    Outcome.ACCEPTED: 202,
    Outcome.IGNORED: 202,
    Outcome.DUPLICATE: 200,
    Outcome.PONG: 200,
    Outcome.UNAPPLIED: 202,
}

_handlers: list[IngestHandler] = []


_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


class BodyTooLarge(Exception):
    """The request body is over MAX_BODY."""


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    """The contract's error shape."""
    return JSONResponse({"error": message, **extra}, status_code=status)


# What the database refuses because of a value in the payload (not a conflict with another
# writer): the delivery is kept unapplied.
CANNOT_STORE = (
    psycopg.DataError,
    psycopg.errors.CheckViolation,
    psycopg.errors.NotNullViolation,
    psycopg.errors.ProgramLimitExceeded,
)
MAX_REASON = 500
# A body must arrive within this: GitHub gives a delivery 10 s in all, and a post that trickles
# in would hold its share of the budget for as long as the platform allows.
BODY_READ_SECONDS = 10.0
# Bodies of a declared size up to SMALL_BODY may also use a reserve beyond the budget, so a
# flood of large posts (signed or not) cannot keep an ordinary delivery out.
SMALL_BODY = 1024 * 1024
RESERVE = 32 * 1024 * 1024


class BodyTimeout(Exception):
    """The body did not arrive within BODY_READ_SECONDS."""


class OverBudget(Exception):
    """This instance already holds its budget of body bytes in flight."""


class BodyBudget:
    """The body bytes one instance holds in flight (INGEST_BODY_BUDGET_MB): a flood of large
    posts gets 503s instead of taking the instance past its memory."""

    def __init__(self, capacity: int, reserve: int = RESERVE) -> None:
        self.capacity = capacity
        self.reserve = reserve
        self.used = 0

    def take(self, size: int, *, small: bool = False) -> None:
        """Reserve `size` bytes (a `small` body may use the reserve too), or raise OverBudget."""
        if self.used + size > self.capacity + (self.reserve if small else 0):
            raise OverBudget
        self.used += size

    def give(self, size: int) -> None:
        """Release bytes reserved with take()."""
        self.used -= size


async def read_body(
    request: Request,
    limit: int = MAX_BODY,
    *,
    budget: BodyBudget | None = None,
    verifier: StreamVerifier | None = None,
) -> bytearray:
    """The raw body in one buffer, refusing more than `limit` bytes before reading them (by
    Content-Length) or as soon as they arrive. Bytes are reserved on `budget` as they come (the
    caller gives back `len(result)`, or what was reserved when this raises) and fed to
    `verifier` as read."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    small = bool(declared and declared.isdigit() and int(declared) <= SMALL_BODY)
    body = bytearray()
    taken = 0
    try:
        async with asyncio.timeout(BODY_READ_SECONDS):
            async for chunk in request.stream():
                if len(body) + len(chunk) > limit:
                    raise BodyTooLarge
                if budget is not None:
                    budget.take(len(chunk), small=small)
                    taken += len(chunk)
                body += chunk
                if verifier is not None:
                    verifier.update(chunk)
    except TimeoutError:
        if budget is not None:
            budget.give(taken)
        raise BodyTimeout from None
    except BaseException:
        if budget is not None:
            budget.give(taken)
        raise
    return body


def decode_payload(body: bytes | bytearray, content_type: str) -> tuple[dict[str, Any], str]:
    """(payload as parse() reads it, JSON text) from a JSON or form-encoded (payload=...) body."""
    if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
        if "payload" not in form:
            raise ValueError("form body has no payload field")
        text = form["payload"][0]
    else:
        text = body.decode("utf-8")
    if "\\u0000" in text:
        # PostgreSQL text and jsonb cannot hold NUL; GitHub may send one in a commit message.
        # Only an escape itself: after an even run of backslashes (a literal "\\u0000" in a
        # title is written "\\\\u0000" and stays as it is).
        text = _NUL_ESCAPE.sub(r"\1\\ufffd", text)
    return load_payload(text), text


class IngestHandler:
    """Verifies, dedupes and stores GitHub deliveries; serves the CI build path."""

    def __init__(self, settings: IngestSettings | None = None) -> None:
        self.settings = settings or IngestSettings.from_env()
        self.secret = self.settings.secret("github_webhook_secret") or ""
        self.db = Database(
            self.settings.dsn,
            min_size=self.settings.db_pool_min,
            max_size=self.settings.db_pool_max,
        )
        self.batcher = Batcher(self.db, notify=self.settings.feed_notify)
        self.budget = BodyBudget(int(self.settings.ingest_body_budget_mb * 1024 * 1024))
        # Pay-per-use: committed work wakes the poller when none runs (flowlens.wake).
        self.waker = Waker(self.db, self.settings.poller_url, auth=self.settings.wake_auth,
                           read_seconds=self.settings.poll_budget_seconds + 60.0)  # fmt: skip
        _handlers.append(self)

    async def close(self) -> None:
        """Finish the transactions under way and release the database pool."""
        await self.waker.close()
        await self.batcher.close()
        await self.db.close()

    async def __call__(self, request: Request) -> JSONResponse:
        trace = logs.trace_from_header(
            request.headers.get("x-cloud-trace-context"), self.settings.google_cloud_project
        )
        with logs.bind(component="ingest", trace=trace):
            path = request.scope["path"].rstrip("/") or "/"  # request.url builds a whole URL
            if path == CI_PATH:
                return await self.ci_build(request)
            if path == "/healthz" and request.method == "GET":
                ok = await self.db.ping()
                return JSONResponse({"status": "ok" if ok else "unavailable"}, 200 if ok else 503)
            if path not in WEBHOOK_PATHS:
                return error(404, f"no such path {path}")
            return await self.webhook(request)

    async def webhook(self, request: Request) -> JSONResponse:
        """Handle one GitHub delivery as docs/ARCHITECTURE.md's answer table says."""
        if request.method != "POST":
            return JSONResponse({"error": "method not allowed; POST a webhook"}, 405,
                                headers={"Allow": "POST"})  # fmt: skip
        signature = request.headers.get("x-hub-signature-256")
        # Not a byte of a body whose signature cannot hold is read.
        if not well_formed(signature):
            log.warning("rejected delivery: missing or malformed signature")
            return error(401, "missing or invalid X-Hub-Signature-256")
        verifier = StreamVerifier(self.secret)
        try:
            body = await read_body(request, budget=self.budget, verifier=verifier)
        except BodyTooLarge:
            return error(413, f"body over {MAX_BODY} bytes")
        except BodyTimeout:
            return error(408, f"the body did not arrive within {BODY_READ_SECONDS:g} s")
        except OverBudget:
            log.warning("503: %d body bytes in flight already", self.budget.used)
            return JSONResponse(
                {"error": "too many deliveries in flight; retry"},
                503,
                headers={"Retry-After": "1"},
            )
        try:
            return await self._verified(request, body, verifier, signature)
        finally:
            self.budget.give(len(body))

    async def _verified(
        self, request: Request, body: bytearray, verifier: StreamVerifier, signature: str | None
    ) -> JSONResponse:
        # Nothing is looked at before the signature holds.
        if not verifier.matches(signature):
            log.warning("rejected delivery: missing or wrong signature")
            return error(401, "missing or invalid X-Hub-Signature-256")
        event = request.headers.get("x-github-event", "").strip()
        delivery = request.headers.get("x-github-delivery", "").strip()
        if not event or not delivery:
            return error(400, "X-GitHub-Event and X-GitHub-Delivery headers are required")
        if len(delivery) > 200 or len(event) > 100:
            return error(400, "X-GitHub-Event or X-GitHub-Delivery is too long")
        try:
            payload, text = decode_payload(body, request.headers.get("content-type", ""))
        except (ValueError, UnicodeDecodeError) as exc:
            return error(400, f"body is not a valid webhook payload: {exc}")
        action = payload.get("action")
        with logs.bind(delivery=delivery, event=event):
            try:
                item = Item(delivery, event, parse(event, payload), text)
            except PayloadError as exc:
                return await self._unapplied(delivery, event, text, action, f"{event}: {exc}")
            return await self._store(item, text, action)

    async def _store(self, item: Item, text: str, action: Any) -> JSONResponse:
        """Store a parsed delivery and answer as the contract's table says."""
        delivery, event = item.delivery_id, item.event
        with logs.bind(repository=item.facts.repo.full_name if item.facts.repo else None):
            try:
                outcome = await self.batcher.submit(item)
            except DatabaseUnavailable as exc:
                log.error("database unavailable: %s", exc)
                return error(503, "database unavailable; retry the delivery")
            except CANNOT_STORE as exc:
                if exc.sqlstate is None:  # raised reading stored data back: not this payload
                    raise
                # A value of this payload out of range or outside a column's rule: rolled back
                # whole, and kept for when the code handles it.
                reason = f"{event}: a value the database cannot store: {first_line(exc)[:300]}"
                return await self._unapplied(delivery, event, text, action, reason)
            except psycopg.IntegrityError as exc:
                # A conflict with a concurrent writer that outlasted the retries: passing.
                log.error("delivery conflicted with another writer: %s", exc)
                return error(503, "a concurrent write conflicted; retry the delivery")
            log.info("%s %s", event, outcome.value)
            if outcome is Outcome.ACCEPTED and wakes_poller(item.facts):
                self.waker.poke()  # after the commit; the answer does not wait for it
            return JSONResponse(
                {"status": outcome.value, "delivery": delivery, "event": event},
                status_code=_STATUS_CODE[outcome],
            )

    async def _unapplied(
        self, delivery: str, event: str, text: str, action: Any, reason: str
    ) -> JSONResponse:
        """Keep a signed delivery FlowLens cannot apply (202 unapplied, naming why)."""
        reason = reason[:MAX_REASON]
        try:
            outcome = await record_unapplied(self.db, delivery, event, text, action, reason)
        except DatabaseUnavailable as exc:
            log.error("database unavailable: %s", exc)
            return error(503, "database unavailable; retry the delivery")
        log.warning("%s %s: %s", event, outcome.value, reason)
        body = {"status": outcome.value, "delivery": delivery, "event": event}
        if outcome is Outcome.UNAPPLIED:
            body["reason"] = reason
        return JSONResponse(body, status_code=_STATUS_CODE[outcome])

    async def ci_build(self, request: Request) -> JSONResponse:
        """POST /api/webhook/github-actions with Authorization: Bearer CI_WRITE_KEY."""
        if request.method != "POST":
            return JSONResponse({"error": "method not allowed"}, 405, headers={"Allow": "POST"})
        auth = request.headers.get("authorization", "")
        if not auth.lower().startswith("bearer ") or not auth[7:].strip():
            return error(401, "Authorization: Bearer <CI_WRITE_KEY> required")
        key = self.settings.secret("ci_write_key")
        if not key or not hmac.compare_digest(auth[7:].strip().encode(), key.encode()):
            return error(403, "wrong CI write key")
        try:
            payload = load_payload(await read_body(request, limit=1024 * 1024))
        except BodyTooLarge:
            return error(413, "body over 1 MiB")
        except BodyTimeout:
            return error(408, f"the body did not arrive within {BODY_READ_SECONDS:g} s")
        except ValueError as exc:
            return error(400, f"body is not a JSON object: {str(exc)[:200]}")
        # A GitHub Actions event forwarded by a workflow step, or else a flat report.
        report: CiBuild | None = None
        try:
            facts = actions_event(payload, request.headers.get("x-github-event"))
        except BadCiBody as exc:
            return error(400, f"invalid GitHub Actions event: {exc}")
        except ValidationError as exc:
            return error(400, f"invalid GitHub Actions event: {_problems(exc)}")
        if facts is None:
            try:
                report = CiBuild.model_validate(payload)
            except ValidationError as exc:
                return error(400, f"invalid build report: {_problems(exc)}")
        build = report.facts() if report is not None else facts
        assert build is not None and build.repo is not None
        with logs.bind(repository=build.repo.full_name):
            try:
                build_id = await record_ci_build(self.db, build, notify=self.settings.feed_notify)
            except DatabaseUnavailable as exc:
                log.error("database unavailable: %s", exc)
                return error(503, "database unavailable; retry")
            except psycopg.DataError as exc:
                if exc.sqlstate is None:
                    raise
                log.warning("build report refused by the database: %s", exc)
                return error(400, f"invalid build report: {first_line(exc)[:300]}")
        if wakes_poller(build):
            self.waker.poke()  # a failed build may alert
        if report is None:
            return JSONResponse(
                {"message": "Webhook processed successfully", "build_id": build_id}, 200
            )
        return JSONResponse(
            {"status": "accepted", "build": f"ci:{report.run_id}", "build_id": build_id}, 202
        )


def wakes_poller(facts: Delivery) -> bool:
    """Whether a delivery is work the poller should start on now: a head to analyse, or a
    failed build (an alert)."""
    return facts.needs_analysis or any(b.status == "failed" for b in facts.builds)


def _problems(exc: ValidationError) -> str:
    """Each invalid field of a body, by its path: `workflow_run.id: Input should be…`."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
    )


async def close_all() -> None:
    """Close every handler's pool (tests and graceful shutdown)."""
    while _handlers:
        await _handlers.pop().close()
