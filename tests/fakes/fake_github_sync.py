"""A local stand-in for the GitHub REST endpoints the sync reads, and a world that feeds it.

    github = FakeGitHubSync()
    world = GitHubWorld(github)                # one repository (the fixtures' Hello-World)
    event, payload = world.open_pr(1, sha=SHA) # the webhook GitHub would send ...
    with github.running() as url:              # ... and the REST API now serves the same PR
        ...                                    # GITHUB_API_URL=url

Endpoints: GET /repos/{o}/{r}, /repos/{o}/{r}/pulls (state, sort=updated, direction,
per_page, page), /pulls/{n}, /pulls/{n}/reviews, /actions/runs. Every response carries an
ETag and answers If-None-Match with 304, lists paginate with Link headers, and the rate
limit, secondary limits and server errors can be scripted.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.fake_github import GitHubRequest
from tests.fakes.server import serve

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "github"

# Fields only the single-PR endpoint (and pull_request webhooks) carry, not the list.
FULL_ONLY = (
    "merged", "mergeable", "rebaseable", "mergeable_state", "merged_by", "comments",
    "review_comments", "maintainer_can_modify", "commits", "additions", "deletions",
    "changed_files",
)  # fmt: skip


def _fixture(relative: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / relative).read_text("utf-8"))
    return data


def iso(moment: datetime) -> str:
    """GitHub's timestamp format."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class SyncRequest(GitHubRequest):
    """One request the fake received, with the page it asked for."""

    @property
    def page(self) -> int:
        return int(self.query.get("page", "1"))


@dataclass
class _Failure:
    status: int
    times: int
    match: Callable[[SyncRequest], bool]
    retry_after: float | None = None
    rate_limited: bool = False


class FakeGitHubSync:
    """Programmable fake of the repository, pulls, reviews and workflow-runs endpoints."""

    def __init__(self, *, max_per_page: int = 100, limit: int = 5000) -> None:
        self.max_per_page = max_per_page
        self.repos: dict[str, dict[str, Any]] = {}
        self.pulls: dict[tuple[str, int], dict[str, Any]] = {}
        self.reviews: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self.runs: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[SyncRequest] = []
        self.url: str | None = None
        self.limit = limit
        self.remaining = limit
        self.reset_at = time.time() + 3600
        self._failures: list[_Failure] = []
        self._lock = threading.RLock()
        base = "/repos/{owner}/{repo}"
        self.app = Starlette(
            routes=[
                Route(base, self._handler(self._repo)),
                Route(base + "/pulls", self._handler(self._pull_list)),
                Route(base + "/pulls/{number:int}", self._handler(self._pull)),
                Route(base + "/pulls/{number:int}/reviews", self._handler(self._reviews)),
                Route(base + "/actions/runs", self._handler(self._runs)),
            ]
        )

    # --- scripting -----------------------------------------------------------------------

    def rate_limit(self, remaining: int, reset_in: float) -> None:
        """Only `remaining` requests until the window resets `reset_in` seconds from now."""
        with self._lock:
            self.remaining = remaining
            self.reset_at = time.time() + reset_in

    def fail(
        self,
        status: int = 502,
        *,
        times: int = 1,
        when: Callable[[SyncRequest], bool] = lambda r: True,
    ) -> None:
        """The next `times` requests matching `when` answer `status`."""
        with self._lock:
            self._failures.append(_Failure(status, times, when))

    def secondary_limit(
        self, retry_after: float, *, status: int = 429, times: int = 1,
        when: Callable[[SyncRequest], bool] = lambda r: True,
    ) -> None:  # fmt: skip
        """The next `times` matching requests get a secondary limit with Retry-After."""
        with self._lock:
            self._failures.append(_Failure(status, times, when, retry_after=retry_after))

    def paths(self, status: int | None = None) -> list[str]:
        """path?page=N of every request (optionally only those answered `status`)."""
        with self._lock:
            return [
                f"{r.path}?page={r.page}"
                for r in self.requests
                if status is None or r.status == status
            ]

    @contextmanager
    def running(self) -> Iterator[str]:
        """Serve the fake on loopback; yields (and sets .url to) its base URL."""
        with serve(self.app) as url:
            self.url = url
            try:
                yield url
            finally:
                self.url = None

    # --- serving -------------------------------------------------------------------------

    def _handler(self, body_of: Callable[[Request, str], Any]) -> Any:
        async def handle(request: Request) -> Response:
            record = SyncRequest(
                method=request.method,
                path=request.url.path,
                query=dict(request.query_params),
                headers={k.lower(): v for k, v in request.headers.items()},
            )
            response = self._answer(request, record, body_of)
            record.status = response.status_code
            with self._lock:
                self.requests.append(record)
            return response

        return handle

    def _limit_headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(0, self.remaining)),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at)),
        }

    def _answer(
        self, request: Request, record: SyncRequest, body_of: Callable[[Request, str], Any]
    ) -> Response:
        with self._lock:
            now = time.time()
            if now >= self.reset_at:
                self.remaining = self.limit
                self.reset_at = now + 3600
            for failure in self._failures:
                if failure.times > 0 and failure.match(record):
                    failure.times -= 1
                    if failure.retry_after is not None:
                        return JSONResponse(
                            {"message": "You have exceeded a secondary rate limit."},
                            status_code=failure.status,
                            headers={"Retry-After": f"{failure.retry_after:g}"},
                        )
                    return JSONResponse({"message": "Server Error"}, status_code=failure.status)
            if self.remaining <= 0:
                return JSONResponse(
                    {"message": "API rate limit exceeded for 127.0.0.1."},
                    status_code=403,
                    headers=self._limit_headers(),
                )
            repository = f"{request.path_params['owner']}/{request.path_params['repo']}"
            if repository not in self.repos:
                return JSONResponse({"message": "Not Found"}, status_code=404)
            try:
                body, link = body_of(request, repository)
            except KeyError:
                return JSONResponse({"message": "Not Found"}, status_code=404)
            text = json.dumps(body, sort_keys=True)
            etag = 'W/"' + hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest() + '"'
            if request.headers.get("if-none-match") == etag:
                # Like GitHub: a 304 does not use up the rate limit.
                return Response(status_code=304, headers={"ETag": etag, **self._limit_headers()})
            self.remaining -= 1
            headers = {"ETag": etag, **self._limit_headers()}
            if link:
                headers["Link"] = link
            return Response(text, media_type="application/json", headers=headers)

    def _page(self, request: Request, items: list[Any]) -> tuple[list[Any], str]:
        per_page = max(1, min(int(request.query_params.get("per_page", 30)), 100))
        per_page = min(per_page, self.max_per_page)
        page = max(int(request.query_params.get("page", 1)), 1)
        last = max(1, math.ceil(len(items) / per_page))

        def url(n: int) -> str:
            return str(request.url.include_query_params(per_page=per_page, page=n))

        links = []
        if page < last:
            links += [f'<{url(page + 1)}>; rel="next"', f'<{url(last)}>; rel="last"']
        if page > 1:
            links += [f'<{url(page - 1)}>; rel="prev"', f'<{url(1)}>; rel="first"']
        return items[(page - 1) * per_page : page * per_page], ", ".join(links)

    def _repo(self, request: Request, repository: str) -> tuple[Any, str]:
        return self.repos[repository], ""

    def _pull_list(self, request: Request, repository: str) -> tuple[Any, str]:
        state = request.query_params.get("state", "open")
        items = [
            list_form(pr)
            for (repo, _), pr in self.pulls.items()
            if repo == repository and (state == "all" or pr["state"] == state)
        ]
        key = "updated_at" if request.query_params.get("sort") == "updated" else "created_at"
        descending = request.query_params.get("direction", "desc") == "desc"
        items.sort(key=lambda p: (p[key], p["number"]), reverse=descending)
        return self._page(request, items)

    def _pull(self, request: Request, repository: str) -> tuple[Any, str]:
        return self.pulls[(repository, request.path_params["number"])], ""

    def _reviews(self, request: Request, repository: str) -> tuple[Any, str]:
        number = request.path_params["number"]
        if (repository, number) not in self.pulls:
            raise KeyError(number)
        return self._page(request, list(self.reviews.get((repository, number), [])))

    def _runs(self, request: Request, repository: str) -> tuple[Any, str]:
        runs = sorted(
            self.runs.get(repository, []), key=lambda r: (r["created_at"], r["id"]), reverse=True
        )
        sha = request.query_params.get("head_sha")
        if sha is not None:  # GitHub's filter: only the runs of that head commit
            runs = [r for r in runs if r["head_sha"] == sha]
        chunk, link = self._page(request, runs)
        return {"total_count": len(runs), "workflow_runs": chunk}, link


def list_form(pr: dict[str, Any]) -> dict[str, Any]:
    """A pull request as the list endpoint (and a review's payload) shows it."""
    return {k: copy.deepcopy(v) for k, v in pr.items() if k not in FULL_ONLY}


class GitHubWorld:
    """One repository whose changes yield the webhook GitHub would send, and update the fake.

    Objects are derived from the fixtures (octokit/webhooks examples) by changing the fields a
    change touches: numbers, shas, titles, states and timestamps.
    """

    def __init__(self, github: FakeGitHubSync, *, start: datetime | None = None) -> None:
        self.github = github
        opened = _fixture("pull_request/opened.payload.json")
        self.repo: dict[str, Any] = opened["repository"]
        self.full_name: str = self.repo["full_name"]
        self.user: dict[str, Any] = opened["pull_request"]["user"]
        self._pr_template: dict[str, Any] = opened["pull_request"]
        self._review_template = _fixture("pull_request_review/submitted.payload.json")["review"]
        self._run_template = _fixture("workflow_run/completed.with-pull-requests.payload.json")[
            "workflow_run"
        ]
        self.now = start or datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
        github.repos[self.full_name] = self.repo
        github.runs.setdefault(self.full_name, [])

    def tick(self, minutes: float = 1.0) -> str:
        """Advance the world's clock; the new time as GitHub writes it."""
        self.now += timedelta(minutes=minutes)
        return iso(self.now)

    def pr(self, number: int) -> dict[str, Any]:
        return self.github.pulls[(self.full_name, number)]

    def _pr_event(self, action: str, number: int) -> tuple[str, dict[str, Any]]:
        pr = copy.deepcopy(self.pr(number))
        payload = {"action": action, "number": number, "pull_request": pr,
                   "repository": copy.deepcopy(self.repo), "sender": self.user}  # fmt: skip
        return "pull_request", payload

    def open_pr(
        self, number: int, *, sha: str, title: str | None = None, branch: str | None = None,
        draft: bool = False, additions: int = 3, deletions: int = 1, changed_files: int = 2,
    ) -> tuple[str, dict[str, Any]]:  # fmt: skip
        """A new pull request (derived from the opened fixture)."""
        at = self.tick()
        pr = copy.deepcopy(self._pr_template)
        pr.update(
            id=900000 + number, number=number, title=title or f"Change {number}",
            body=f"Body of {number}", state="open", draft=draft, created_at=at, updated_at=at,
            closed_at=None, merged_at=None, merged=False, additions=additions,
            deletions=deletions, changed_files=changed_files,
            html_url=f"https://github.com/{self.full_name}/pull/{number}",
        )  # fmt: skip
        pr["head"]["sha"] = sha
        pr["head"]["ref"] = branch or f"feature-{number}"
        self.github.pulls[(self.full_name, number)] = pr
        return self._pr_event("opened", number)

    def push(self, number: int, sha: str, *, additions: int = 5) -> tuple[str, dict[str, Any]]:
        """New commits on the PR's branch (synchronize)."""
        pr = self.pr(number)
        pr["head"]["sha"] = sha
        pr["additions"] = additions
        pr["updated_at"] = self.tick()
        return self._pr_event("synchronize", number)

    def edit(self, number: int, **fields: Any) -> tuple[str, dict[str, Any]]:
        """Title, body or base edited."""
        pr = self.pr(number)
        base = fields.pop("base", None)
        pr.update(fields)
        if base:
            pr["base"]["ref"] = base
        pr["updated_at"] = self.tick()
        return self._pr_event("edited", number)

    def set_draft(self, number: int, draft: bool) -> tuple[str, dict[str, Any]]:
        pr = self.pr(number)
        pr["draft"] = draft
        pr["updated_at"] = self.tick()
        return self._pr_event("converted_to_draft" if draft else "ready_for_review", number)

    def close(self, number: int, *, merged: bool = False) -> tuple[str, dict[str, Any]]:
        """Closed, or merged (the fixture set has no merged close: derived here)."""
        pr = self.pr(number)
        at = self.tick()
        pr.update(state="closed", closed_at=at, updated_at=at, merged=merged,
                  merged_at=at if merged else None)  # fmt: skip
        return self._pr_event("closed", number)

    def reopen(self, number: int) -> tuple[str, dict[str, Any]]:
        pr = self.pr(number)
        pr.update(state="open", closed_at=None, updated_at=self.tick())
        return self._pr_event("reopened", number)

    def label(self, number: int) -> tuple[str, dict[str, Any]]:
        """Something the sync cannot see but that bumps updated_at (a label)."""
        self.pr(number)["updated_at"] = self.tick()
        return self._pr_event("labeled", number)

    def review(
        self, number: int, state: str, *, review_id: int, login: str = "reviewer"
    ) -> tuple[str, dict[str, Any]]:
        """A submitted review (approved / changes_requested / commented: derived states)."""
        at = self.tick()
        pr = self.pr(number)
        pr["updated_at"] = at
        review = copy.deepcopy(self._review_template)
        review.update(id=review_id, state=state.upper(), submitted_at=at,
                      commit_id=pr["head"]["sha"])  # fmt: skip
        review["user"] = {**review["user"], "login": login}
        self.github.reviews.setdefault((self.full_name, number), []).append(review)
        hook_review = {**copy.deepcopy(review), "state": state.lower()}
        payload = {"action": "submitted", "review": hook_review, "pull_request": list_form(pr),
                   "repository": copy.deepcopy(self.repo), "sender": review["user"]}  # fmt: skip
        return "pull_request_review", payload

    def dismiss(self, number: int, review_id: int) -> tuple[str, dict[str, Any]]:
        pr = self.pr(number)
        pr["updated_at"] = self.tick()
        (review,) = [
            r for r in self.github.reviews[(self.full_name, number)] if r["id"] == review_id
        ]
        review["state"] = "DISMISSED"
        hook_review = {**copy.deepcopy(review), "state": "dismissed"}
        payload = {"action": "dismissed", "review": hook_review, "pull_request": list_form(pr),
                   "repository": copy.deepcopy(self.repo), "sender": review["user"]}  # fmt: skip
        return "pull_request_review", payload

    def run(
        self, run_id: int, *, sha: str, status: str, conclusion: str | None = None,
        number: int | None = None, branch: str | None = None, name: str = "CI",
    ) -> tuple[str, dict[str, Any]]:  # fmt: skip
        """A workflow run created or moved on (derived from the completed fixture)."""
        at = self.tick()
        runs = self.github.runs[self.full_name]
        existing = [r for r in runs if r["id"] == run_id]
        if existing:
            run = existing[0]
        else:
            run = copy.deepcopy(self._run_template)
            url = f"https://github.com/{self.full_name}/actions/runs/{run_id}"
            run.update(id=run_id, created_at=at, run_started_at=at, run_number=run_id,
                       html_url=url)  # fmt: skip
            runs.append(run)
            refs = []
            if number is not None:
                pr = self.pr(number)
                refs = [{
                    "url": f"https://api.github.com/repos/{self.full_name}/pulls/{number}",
                    "id": pr["id"], "number": number,
                    "head": {"ref": pr["head"]["ref"], "sha": sha,
                             "repo": {"id": self.repo["id"], "name": self.repo["name"]}},
                    "base": {"ref": pr["base"]["ref"], "sha": pr["base"]["sha"],
                             "repo": {"id": self.repo["id"], "name": self.repo["name"]}},
                }]  # fmt: skip
            run["pull_requests"] = refs
            run["head_branch"] = branch or (self.pr(number)["head"]["ref"] if number else "main")
        run.update(name=name, head_sha=sha, status=status, conclusion=conclusion, updated_at=at)
        action = {"completed": "completed", "in_progress": "in_progress"}.get(status, "requested")
        payload = {"action": action, "workflow_run": copy.deepcopy(run),
                   "workflow": {"name": name}, "repository": copy.deepcopy(self.repo),
                   "sender": self.user}  # fmt: skip
        return "workflow_run", payload
