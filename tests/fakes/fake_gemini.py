"""A local stand-in for the Gemini REST API that the real google-genai SDK can call.

    gemini = FakeGemini(Reply.error(429), Reply.answer(risk_level="high"))
    with gemini.running() as url:  # or: with serve(gemini.app) as url
        ...  # GOOGLE_GEMINI_BASE_URL=url, or HttpOptions(base_url=url)
    assert len(gemini.calls) == 2

Replies are served in order; once the script is used up every call gets `default`
(a valid medium-risk answer unless told otherwise). `delay` is added to every call.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import serve

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


@dataclass(frozen=True)
class Reply:
    """One scripted answer: a model text (status 200) or an API error, after `delay` s."""

    status: int = 200
    text: str | None = None
    error_message: str = ""
    delay: float = 0.0
    finish_reason: str = "STOP"
    retry_delay: str | None = None

    @classmethod
    def answer(
        cls,
        risk_level: str = "medium",
        summary: str = "Moderate change to application code.",
        recommendation: str = "Review the changed files.",
        key_changes: list[str] | None = None,
        confidence_score: float = 0.7,
        **extra: Any,
    ) -> Reply:
        """A well-formed JSON answer (extra fields are added as given, to break the schema)."""
        payload = {
            "risk_level": risk_level,
            "summary": summary,
            "recommendation": recommendation,
            "key_changes": key_changes or [],
            "confidence_score": confidence_score,
            **extra,
        }
        return cls(text=json.dumps(payload))

    @classmethod
    def raw(cls, text: str) -> Reply:
        """Any model text, e.g. something that is not the schema."""
        return cls(text=text)

    @classmethod
    def error(cls, status: int, message: str = "", *, retry_delay: str | None = None) -> Reply:
        """An API error in Google's envelope; retry_delay ("1.5s") adds a RetryInfo detail."""
        return cls(
            status=status,
            error_message=message or f"fake gemini error {status}",
            retry_delay=retry_delay,
        )

    @classmethod
    def blocked(cls) -> Reply:
        """A candidate with no text (as when the answer was blocked for safety)."""
        return cls(text=None, finish_reason="SAFETY")

    def slow(self, seconds: float) -> Reply:
        """This reply, sent only after `seconds` (the client usually times out first)."""
        return replace(self, delay=seconds)


DEFAULT_REPLY = Reply.answer()


@dataclass
class GeminiCall:
    """One request the fake received."""

    version: str
    model: str
    method: str
    headers: dict[str, str]
    body: dict[str, Any]
    reply: Reply | None = None
    at: float = 0.0

    @property
    def api_key(self) -> str | None:
        """The x-goog-api-key header."""
        return self.headers.get("x-goog-api-key")

    @property
    def prompt(self) -> str:
        """All text parts of the request's contents, joined."""
        return "\n".join(
            part.get("text", "")
            for content in self.body.get("contents", [])
            for part in content.get("parts", [])
        )

    @property
    def system(self) -> str:
        """Text of the system instruction."""
        instruction = self.body.get("systemInstruction") or {}
        return "\n".join(part.get("text", "") for part in instruction.get("parts", []))

    @property
    def generation_config(self) -> dict[str, Any]:
        """The generationConfig block (responseMimeType, responseSchema...)."""
        config: dict[str, Any] = self.body.get("generationConfig") or {}
        return config


class FakeGemini:
    """Programmable fake of POST /{version}/models/{model}:generateContent."""

    def __init__(
        self,
        *replies: Reply,
        default: Reply | Callable[[GeminiCall], Reply] = DEFAULT_REPLY,
        delay: float = 0.0,
    ) -> None:
        self.script: deque[Reply] = deque(replies)
        self.default = default
        self.delay = delay  # added to every call, e.g. to measure concurrency
        self.calls: list[GeminiCall] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.url: str | None = None
        self._lock = threading.Lock()
        self.app = Starlette(
            routes=[Route("/{version}/models/{target:path}", self._handle, methods=["POST"])]
        )

    def reset(
        self, *, default: Reply | Callable[[GeminiCall], Reply] = DEFAULT_REPLY, delay: float = 0.0
    ) -> None:
        """Forget the script, the calls and the counters (to reuse one running server)."""
        with self._lock:
            self.script.clear()
            self.calls.clear()
            self.default = default
            self.delay = delay
            self.max_in_flight = self.in_flight

    def push(self, *replies: Reply) -> None:
        """Append replies to the script."""
        with self._lock:
            self.script.extend(replies)

    @contextmanager
    def running(self) -> Iterator[str]:
        """Serve the fake on loopback; yields (and sets .url to) its base URL."""
        with serve(self.app) as url:
            self.url = url
            try:
                yield url
            finally:
                self.url = None

    def _next_reply(self, call: GeminiCall) -> Reply:
        with self._lock:
            if self.script:
                return self.script.popleft()
        return self.default(call) if callable(self.default) else self.default

    async def _handle(self, request: Request) -> Response:
        model, _, method = request.path_params["target"].partition(":")
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = {}
        call = GeminiCall(
            version=request.path_params["version"],
            model=model,
            method=method,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body if isinstance(body, dict) else {},
            at=asyncio.get_running_loop().time(),
        )
        with self._lock:
            self.calls.append(call)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if method != "generateContent":
                return _error(404, f"method {method} not faked")
            reply = self._next_reply(call)
            call.reply = reply
            if not await _sleep_unless_gone(request, self.delay + reply.delay):
                return Response(status_code=499)
            if reply.status != 200:
                return _error(reply.status, reply.error_message, reply.retry_delay)
            return JSONResponse(_candidate_body(model, reply, len(self.calls)))
        finally:
            with self._lock:
                self.in_flight -= 1


async def _sleep_unless_gone(request: Request, seconds: float) -> bool:
    """Sleep, returning early (False) when the client hung up, so shutdown stays quick."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        await asyncio.sleep(min(left, 0.05))
        if await request.is_disconnected():
            return False
    return True


def _error(status: int, message: str, retry_delay: str | None = None) -> JSONResponse:
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": STATUS_NAMES.get(status, "UNKNOWN"),
    }
    if retry_delay is not None:
        error["details"] = [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}
        ]
    return JSONResponse({"error": error}, status_code=status)


def _candidate_body(model: str, reply: Reply, n: int) -> dict[str, Any]:
    parts = [{"text": reply.text}] if reply.text is not None else []
    return {
        "candidates": [
            {
                "content": {"parts": parts, "role": "model"},
                "finishReason": reply.finish_reason,
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 100,
            "candidatesTokenCount": 50,
            "totalTokenCount": 150,
        },
        "modelVersion": model,
        "responseId": f"fake-{n}",
    }
