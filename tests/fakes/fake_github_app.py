"""A local stand-in for the GitHub API as a GitHub App sees it, checking what it receives.

    app = FakeGitHubApp()                      # an App id and an RSA key pair of its own
    app.install(42, "octo/app")                # installation 42 covers octo/app
    with app.running() as url:                 # GITHUB_API_URL=url
        ...                                    # GITHUB_APP_ID=app.app_id,
                                               # GITHUB_APP_PRIVATE_KEY=app.private_pem
    app.check_runs                             # what a reviewer would see on the PR

Endpoints, each authenticated the way GitHub does:
* `POST /app/installations/{id}/access_tokens`, `GET /repos/{o}/{r}/installation`: the App's
  JWT only, verified with the App's public key (RS256, `iss` = the App id, `iat`/`exp` at most
  ten minutes apart, not expired).
* `POST /repos/{o}/{r}/check-runs`, `PATCH .../check-runs/{id}`,
  `GET .../commits/{sha}/check-runs`: an installation token of an installation that covers
  the repository (a check run needs an App).
* `POST /repos/{o}/{r}/statuses/{sha}`, `GET .../pulls/{n}/files`: an installation token as
  above, or one of `static_tokens` (token mode).
Bodies are validated as GitHub does (422 with a message otherwise). Faults can be scripted: a
primary rate limit (403 with X-RateLimit-Remaining 0 and Reset), a secondary limit (Retry-After),
server errors and a hang (the client's timeout).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.fake_github import FakeGitHub, GitHubRequest
from tests.fakes.server import serve

CHECK_STATUSES = {"queued", "in_progress", "completed"}
CONCLUSIONS = {"action_required", "cancelled", "failure", "neutral", "success", "skipped",
               "stale", "timed_out"}  # fmt: skip
STATUS_STATES = {"error", "failure", "pending", "success"}


def rsa_key_pair() -> tuple[str, str]:
    """A fresh RSA key pair as PEM text: (private, public)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@dataclass
class CheckRun:
    """A check run as GitHub keeps it."""

    id: int
    repository: str
    head_sha: str
    name: str
    status: str
    conclusion: str | None
    output: dict[str, Any]
    details_url: str | None
    app_id: int = 0  # the App that made it
    history: list[str] = field(default_factory=list)  # every status it was set to, in order


@dataclass
class Status:
    repository: str
    sha: str
    state: str
    context: str
    description: str
    target_url: str | None


class FakeGitHubApp:
    """Programmable fake of the App, check-run, status and files endpoints."""

    def __init__(self, *, app_id: int = 4242, token_lifetime: float = 3600.0) -> None:
        self.app_id = app_id
        self.private_pem, self.public_pem = rsa_key_pair()
        self.token_lifetime = token_lifetime
        self.installations: dict[int, set[str]] = {}
        self.static_tokens: set[str] = set()
        self.files = FakeGitHub()  # the pulls' files, served behind the same auth
        self.tokens: dict[str, tuple[int, float]] = {}  # token -> (installation, expires)
        self.check_runs: dict[int, CheckRun] = {}
        self.statuses: list[Status] = []
        self.requests: list[GitHubRequest] = []
        self.jwt_claims: list[dict[str, Any]] = []
        self.url: str | None = None
        self._ids = itertools.count(1001)
        self._lock = threading.Lock()
        self._limited_until = 0.0
        # (kind, value, path fragment): "status" | "secondary" | "hang" | "lost"
        self._faults: list[tuple[str, float, str]] = []
        self.app = Starlette(routes=[
            Route("/app/installations/{installation:int}/access_tokens", self._access_token,
                  methods=["POST"]),
            Route("/repos/{owner}/{repo}/installation", self._installation),
            Route("/repos/{owner}/{repo}/check-runs", self._create_run, methods=["POST"]),
            Route("/repos/{owner}/{repo}/check-runs/{run:int}", self._update_run,
                  methods=["PATCH"]),
            Route("/repos/{owner}/{repo}/commits/{sha}/check-runs", self._list_runs),
            Route("/repos/{owner}/{repo}/statuses/{sha}", self._status, methods=["POST"]),
            Route("/repos/{owner}/{repo}/pulls/{number:int}/files", self._files),
        ])  # fmt: skip

    # -- scripting ---------------------------------------------------------------------------

    def install(self, installation: int, *repositories: str) -> None:
        """Installation `installation` covers these repositories (added to what it had)."""
        with self._lock:
            self.installations.setdefault(installation, set()).update(repositories)

    def uninstall(self, installation: int) -> None:
        with self._lock:
            self.installations.pop(installation, None)
            self.tokens = {t: v for t, v in self.tokens.items() if v[0] != installation}

    def rate_limit(self, seconds: float) -> None:
        """The primary limit is spent for `seconds`: 403, X-RateLimit-Remaining 0 and Reset."""
        with self._lock:
            self._limited_until = time.time() + seconds

    def secondary_limit(self, retry_after: float, times: int = 1, only: str = "") -> None:
        """The next `times` requests (whose path holds `only`) get a secondary limit (403 with
        Retry-After)."""
        with self._lock:
            self._faults.extend([("secondary", retry_after, only)] * times)

    def fail_next(self, status: int = 502, times: int = 1, only: str = "") -> None:
        """The next `times` requests (whose path holds `only`) fail with `status`."""
        with self._lock:
            self._faults.extend([("status", float(status), only)] * times)

    def hang_next(self, seconds: float, times: int = 1, only: str = "") -> None:
        """The next `times` requests are not served: a 504 after `seconds` (a client timeout
        when that is longer than the client waits)."""
        with self._lock:
            self._faults.extend([("hang", seconds, only)] * times)

    def lose_answer(self, seconds: float, only: str = "") -> None:
        """The next request is served, but its answer comes only after `seconds`: GitHub did
        it, the client (timed out) does not know."""
        with self._lock:
            self._faults.append(("lost", seconds, only))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._limited_until = 0.0

    def runs_for(self, repository: str, sha: str) -> list[CheckRun]:
        return [r for r in self.check_runs.values()
                if r.repository == repository and r.head_sha == sha]  # fmt: skip

    def calls(self, method: str, fragment: str = "") -> list[GitHubRequest]:
        return [r for r in self.requests if r.method == method and fragment in r.path]

    @contextmanager
    def running(self) -> Iterator[str]:
        with serve(self.app) as url:
            self.url = url
            self.files.url = url
            try:
                yield url
            finally:
                self.url = None

    # -- the checks every request goes through ----------------------------------------------

    async def _gate(self, request: Request) -> Response | None:
        """A scripted fault or the rate limit, before anything else; None: go on."""
        path = request.url.path
        with self._lock:
            fault = next((f for f in self._faults if f[2] in path), None)
            if fault is not None:
                self._faults.remove(fault)
            limited_until = self._limited_until
        if fault is not None:
            kind, value, _ = fault
            if kind == "lost":
                request.state.answer_delay = value
            elif kind == "hang":
                await asyncio.sleep(value)
                return _error(504, "We couldn't respond to your request in time.")
            elif kind == "secondary":
                return _error(403, "You have exceeded a secondary rate limit.",
                              {"Retry-After": f"{value:g}"})  # fmt: skip
            else:
                return _error(int(value), "Server Error")
        if time.time() < limited_until:
            return _error(403, "API rate limit exceeded for installation.", {
                "X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(math.ceil(limited_until)),
            })  # fmt: skip
        return None

    def _app_jwt(self, request: Request) -> Response | None:
        """The request must carry the App's JWT; None when it does."""
        token = _bearer(request)
        if token is None:
            return _error(401, "A JSON web token could not be decoded")
        try:
            claims = jwt.decode(token, self.public_pem, algorithms=["RS256"],
                                options={"require": ["iat", "exp", "iss"]})  # fmt: skip
        except jwt.PyJWTError as exc:
            return _error(401, f"A JSON web token could not be decoded ({type(exc).__name__})")
        if str(claims["iss"]) != str(self.app_id):
            return _error(401, "'Issuer' claim ('iss') must be an Integer of this App's id")
        if claims["exp"] - claims["iat"] > 600:
            return _error(401, "'Expiration time' claim ('exp') is too far in the future")
        with self._lock:
            self.jwt_claims.append(claims)
        return None

    def _installation_token(self, request: Request, repository: str, *,
                            static: bool) -> Response | None:  # fmt: skip
        """An installation token that covers `repository` (or, with `static`, a token-mode
        token); None when it does."""
        token = _bearer(request)
        if token is not None and static and token in self.static_tokens:
            return None
        with self._lock:
            issued = self.tokens.get(token or "")
            covered = issued is not None and repository in self.installations.get(issued[0], ())
        if issued is None or issued[1] < time.time():
            return _error(401, "Bad credentials")
        if not covered:
            return _error(403, "Resource not accessible by integration")
        return None

    async def _record(self, request: Request, answer: Response) -> Response:
        delay = getattr(request.state, "answer_delay", None)
        if delay:
            await asyncio.sleep(delay)
        record = GitHubRequest(
            method=request.method, path=request.url.path, query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            status=answer.status_code,
        )  # fmt: skip
        with self._lock:
            self.requests.append(record)
        return answer

    # -- endpoints ---------------------------------------------------------------------------

    async def _access_token(self, request: Request) -> Response:
        answer = await self._gate(request) or self._app_jwt(request)
        if answer is None:
            installation = request.path_params["installation"]
            if installation not in self.installations:
                answer = _error(404, "Not Found")
            else:
                token = f"ghs_{next(self._ids)}"
                expires = time.time() + self.token_lifetime
                with self._lock:
                    self.tokens[token] = (installation, expires)
                answer = JSONResponse({
                    "token": token,
                    "expires_at": datetime.fromtimestamp(expires, UTC).strftime(
                        "%Y-%m-%dT%H:%M:%SZ"),
                    "permissions": {"checks": "write", "statuses": "write",
                                    "pull_requests": "read", "contents": "read",
                                    "metadata": "read"},
                    "repository_selection": "selected",
                }, status_code=201)  # fmt: skip
        return await self._record(request, answer)

    async def _installation(self, request: Request) -> Response:
        answer = await self._gate(request) or self._app_jwt(request)
        if answer is None:
            repository = _repository(request)
            found = [i for i, repos in self.installations.items() if repository in repos]
            answer = (JSONResponse({"id": found[0], "app_id": self.app_id}) if found
                      else _error(404, "Not Found"))  # fmt: skip
        return await self._record(request, answer)

    async def _create_run(self, request: Request) -> Response:
        repository = _repository(request)
        answer = await self._gate(request) or self._installation_token(
            request, repository, static=False
        )
        if answer is None:
            body = await request.json()
            problem = _check_problem(body, creating=True)
            if problem:
                answer = _error(422, problem)
            else:
                run = CheckRun(
                    id=next(self._ids), repository=repository, head_sha=body["head_sha"],
                    name=body["name"], status=body.get("status", "queued"),
                    conclusion=body.get("conclusion"), output=body.get("output") or {},
                    details_url=body.get("details_url"), app_id=self.app_id,
                )  # fmt: skip
                run.history.append(run.status)
                with self._lock:
                    self.check_runs[run.id] = run
                answer = JSONResponse(_run_json(run), status_code=201)
        return await self._record(request, answer)

    async def _update_run(self, request: Request) -> Response:
        repository = _repository(request)
        answer = await self._gate(request) or self._installation_token(
            request, repository, static=False
        )
        if answer is None:
            run = self.check_runs.get(request.path_params["run"])
            body = await request.json()
            problem = _check_problem(body, creating=False)
            if run is None or run.repository != repository:
                answer = _error(404, "Not Found")
            elif problem:
                answer = _error(422, problem)
            else:
                run.name = body.get("name", run.name)
                run.status = body.get("status", run.status)
                if "conclusion" in body:
                    run.conclusion = body["conclusion"]
                    run.status = "completed"
                run.output = body.get("output", run.output)
                run.details_url = body.get("details_url", run.details_url)
                run.history.append(run.status)
                answer = JSONResponse(_run_json(run))
        return await self._record(request, answer)

    async def _list_runs(self, request: Request) -> Response:
        repository = _repository(request)
        answer = await self._gate(request) or self._installation_token(
            request, repository, static=False
        )
        if answer is None:
            name = request.query_params.get("check_name")
            app_id = request.query_params.get("app_id")
            runs = [_run_json(r) for r in self.runs_for(repository, request.path_params["sha"])
                    if (name is None or r.name == name)
                    and (app_id is None or str(r.app_id) == app_id)]  # fmt: skip
            answer = JSONResponse({"total_count": len(runs), "check_runs": runs})
        return await self._record(request, answer)

    async def _status(self, request: Request) -> Response:
        repository = _repository(request)
        answer = await self._gate(request) or self._installation_token(
            request, repository, static=True
        )
        if answer is None:
            body = await request.json()
            if body.get("state") not in STATUS_STATES:
                answer = _error(422, f"state must be one of {sorted(STATUS_STATES)}")
            elif len(body.get("description") or "") > 140:
                answer = _error(422, "description is too long (maximum is 140 characters)")
            else:
                status = Status(repository, request.path_params["sha"], body["state"],
                                body.get("context") or "default", body.get("description") or "",
                                body.get("target_url"))  # fmt: skip
                with self._lock:
                    self.statuses.append(status)
                answer = JSONResponse({"id": next(self._ids), "state": status.state,
                                       "context": status.context}, status_code=201)  # fmt: skip
        return await self._record(request, answer)

    async def _files(self, request: Request) -> Response:
        repository = _repository(request)
        answer = await self._gate(request) or self._installation_token(
            request, repository, static=True
        )
        return await self._record(request, answer or self.files._answer(request))


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value if scheme.lower() in ("bearer", "token") and value else None


def _repository(request: Request) -> str:
    return f"{request.path_params['owner']}/{request.path_params['repo']}"


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"message": message, "documentation_url": "https://docs.github.com/rest"},
                        status_code=status, headers=headers)  # fmt: skip


def _check_problem(body: Any, *, creating: bool) -> str | None:
    """What GitHub would refuse in a check run's body (None: nothing)."""
    if not isinstance(body, dict):
        return "Invalid request: body is not an object"
    if creating and not (body.get("name") and body.get("head_sha")):
        return "Invalid request: name and head_sha are required"
    status = body.get("status")
    if status is not None and status not in CHECK_STATUSES:
        return f"Invalid request: status {status!r} is not one of {sorted(CHECK_STATUSES)}"
    conclusion = body.get("conclusion")
    if conclusion is not None and conclusion not in CONCLUSIONS:
        return f"Invalid request: conclusion {conclusion!r} is not a conclusion"
    if status == "completed" and conclusion is None:
        return "Invalid request: a completed check run needs a conclusion"
    output = body.get("output")
    if output is not None and not (isinstance(output, dict) and output.get("title")
                                   and output.get("summary")):  # fmt: skip
        return "Invalid request: output needs a title and a summary"
    if output is not None and len(str(output.get("summary"))) > 65535:
        return "Invalid request: output.summary is too long"
    return None


def _run_json(run: CheckRun) -> dict[str, Any]:
    return {"id": run.id, "name": run.name, "head_sha": run.head_sha, "status": run.status,
            "conclusion": run.conclusion, "output": run.output,
            "details_url": run.details_url}  # fmt: skip
