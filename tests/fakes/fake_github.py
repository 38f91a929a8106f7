"""A local stand-in for GitHub's `GET /repos/{o}/{r}/pulls/{n}/files` (REST, paginated).

github = FakeGitHub()
github.add_pull("octo/app", 7, [github_file("src/app.py", additions=3)])
with github.running() as url:          # GITHUB_API_URL=url
    ...
assert github.requests[0].authorization == "Bearer t0ken"
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from flowlens.insights.models import FileChange
from tests.fakes.server import serve


def github_file(
    path: str,
    status: str = "modified",
    additions: int = 1,
    deletions: int = 0,
    patch: str | None = None,
    previous_filename: str | None = None,
) -> dict[str, Any]:
    """One item of the files API as GitHub sends it (a small patch unless given)."""
    if patch is None and status != "removed":
        patch = "@@ -1,1 +1,1 @@\n" + "".join(f"+line {i}\n" for i in range(additions))
    item: dict[str, Any] = {
        "sha": hashlib.sha1(path.encode(), usedforsecurity=False).hexdigest(),
        "filename": path,
        "status": status,
        "additions": additions,
        "deletions": deletions,
        "changes": additions + deletions,
        "blob_url": f"https://github.com/o/r/blob/sha/{path}",
        "raw_url": f"https://github.com/o/r/raw/sha/{path}",
        "contents_url": f"https://api.github.com/repos/o/r/contents/{path}",
    }
    if patch is not None:
        item["patch"] = patch
    if previous_filename is not None:
        item["previous_filename"] = previous_filename
    return item


@dataclass
class GitHubRequest:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int = 0

    @property
    def authorization(self) -> str | None:
        """The Authorization header, if any."""
        return self.headers.get("authorization")


class FakeGitHub:
    """Programmable fake of the pull-request files API."""

    def __init__(self, *, max_per_page: int = 100) -> None:
        self.max_per_page = max_per_page  # lower it to paginate with a handful of files
        self.pulls: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self.requests: list[GitHubRequest] = []
        self.url: str | None = None
        self._lock = threading.Lock()
        self._limited_until = 0.0
        self._limit_status = 403
        self._secondary: list[tuple[int, float]] = []
        self._failures: list[int] = []
        self.app = Starlette(
            routes=[Route("/repos/{owner}/{repo}/pulls/{number:int}/files", self._files)]
        )

    def reset(self, *, max_per_page: int = 100) -> None:
        """Forget pulls, requests, limits and failures (to reuse one running server)."""
        with self._lock:
            self.max_per_page = max_per_page
            self.pulls.clear()
            self.requests.clear()
            self._limited_until = 0.0
            self._limit_status = 403
            self._secondary.clear()
            self._failures.clear()

    def add_pull(
        self, repository: str, number: int, files: Iterable[dict[str, Any] | FileChange]
    ) -> None:
        """Register (or replace) the files of a pull request."""
        items = [_as_item(f) for f in files]
        with self._lock:
            self.pulls[(repository, number)] = items

    def rate_limit(self, seconds: float, *, status: int = 403) -> None:
        """Primary limit exhausted for `seconds`: 403 + X-RateLimit-Remaining 0 + Reset."""
        with self._lock:
            self._limited_until = time.time() + seconds
            self._limit_status = status

    def secondary_limit(self, retry_after: float, *, status: int = 429, times: int = 1) -> None:
        """The next `times` requests get a secondary limit with a Retry-After header."""
        with self._lock:
            self._secondary.extend([(status, retry_after)] * times)

    def fail_next(self, status: int = 502, times: int = 1) -> None:
        """The next `times` requests fail with `status` (a one-off 502 by default)."""
        with self._lock:
            self._failures.extend([status] * times)

    @property
    def authorizations(self) -> list[str | None]:
        """The Authorization header of every request, in order."""
        return [r.authorization for r in self.requests]

    @contextmanager
    def running(self) -> Iterator[str]:
        """Serve the fake on loopback; yields (and sets .url to) its base URL."""
        with serve(self.app) as url:
            self.url = url
            try:
                yield url
            finally:
                self.url = None

    async def _files(self, request: Request) -> Response:
        record = GitHubRequest(
            method=request.method,
            path=request.url.path,
            query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
        )
        response = self._answer(request)
        record.status = response.status_code
        with self._lock:
            self.requests.append(record)
        return response

    def _answer(self, request: Request) -> Response:
        now = time.time()
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
            secondary = self._secondary.pop(0) if self._secondary else None
            limited = now < self._limited_until
        if failure is not None:
            return JSONResponse({"message": "Server Error"}, status_code=failure)
        if limited:
            return JSONResponse(
                {"message": "API rate limit exceeded for 127.0.0.1."},
                status_code=self._limit_status,
                headers={
                    "X-RateLimit-Limit": "60",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": str(math.ceil(self._limited_until)),
                },
            )
        if secondary is not None:
            status, retry_after = secondary
            return JSONResponse(
                {"message": "You have exceeded a secondary rate limit."},
                status_code=status,
                headers={"Retry-After": f"{retry_after:g}"},
            )

        p = request.path_params
        key = (f"{p['owner']}/{p['repo']}", p["number"])
        with self._lock:
            items = self.pulls.get(key)
        if items is None:
            return JSONResponse(
                {
                    "message": "Not Found",
                    "documentation_url": "https://docs.github.com/rest/pulls/pulls",
                },
                status_code=404,
            )
        try:
            per_page = min(int(request.query_params.get("per_page", 30)), 100)
            page = max(int(request.query_params.get("page", 1)), 1)
        except ValueError:
            return JSONResponse({"message": "bad paging"}, status_code=422)
        per_page = max(1, min(per_page, self.max_per_page))
        last = max(1, math.ceil(len(items) / per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "4999"}
        link = _link_header(request, page, last, per_page)
        if link:  # like GitHub, no Link header when everything fits on one page
            headers["Link"] = link
        return JSONResponse(chunk, headers=headers)


def _as_item(f: dict[str, Any] | FileChange) -> dict[str, Any]:
    if isinstance(f, FileChange):
        return github_file(f.path, f.status, f.additions, f.deletions, f.patch, f.previous_path)
    return dict(f)


def _link_header(request: Request, page: int, last: int, per_page: int) -> str:
    def url(n: int) -> str:
        return str(request.url.include_query_params(per_page=per_page, page=n))

    links = []
    if page < last:
        links += [f'<{url(page + 1)}>; rel="next"', f'<{url(last)}>; rel="last"']
    if page > 1:
        links += [f'<{url(page - 1)}>; rel="prev"', f'<{url(1)}>; rel="first"']
    return ", ".join(links)
