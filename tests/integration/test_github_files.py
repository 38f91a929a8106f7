"""The real httpx client against a local fake of GitHub's pull-request files API."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from flowlens.insights import GitHubError, GitHubFilesClient
from flowlens.insights.github_files import MAX_PAGES, USER_AGENT, cap_patch
from tests.fakes import FakeGitHub, github_file

REPO = "octo/app"


def client_for(github: FakeGitHub, token: str | None = None, **kw: Any) -> GitHubFilesClient:
    assert github.url is not None
    kw.setdefault("retry_delay", 0.01)
    return GitHubFilesClient(github.url, token, **kw)


@pytest.fixture
async def client(github: FakeGitHub) -> AsyncIterator[GitHubFilesClient]:
    c = client_for(github, "t0ken")
    yield c
    await c.aclose()


async def test_lists_files_across_pages(github: FakeGitHub, client: GitHubFilesClient) -> None:
    github.reset(max_per_page=2)
    github.add_pull(
        REPO,
        7,
        [
            github_file("src/a.py", additions=3, deletions=1),
            github_file("src/b.py", status="added", additions=10),
            github_file("src/c.py", status="removed", deletions=5),
            github_file("README.md", additions=2),
            github_file("src/new.py", status="renamed", previous_filename="src/old.py"),
        ],
    )
    files = await client.list_files(REPO, 7)

    assert [f.path for f in files] == [
        "src/a.py",
        "src/b.py",
        "src/c.py",
        "README.md",
        "src/new.py",
    ]
    assert (files[0].status, files[0].additions, files[0].deletions) == ("modified", 3, 1)
    assert files[1].status == "added"
    assert files[2].patch is None  # GitHub sends no patch for a removed file
    assert files[4].previous_path == "src/old.py"
    assert [r.query for r in github.requests] == [
        {"per_page": "100"},
        {"per_page": "2", "page": "2"},
        {"per_page": "2", "page": "3"},
    ]


async def test_binary_file_has_no_patch(github: FakeGitHub, client: GitHubFilesClient) -> None:
    item = github_file("img/logo.png", additions=0)
    del item["patch"]
    github.add_pull(REPO, 1, [item])
    [f] = await client.list_files(REPO, 1)
    assert f.patch is None


async def test_headers_with_token(github: FakeGitHub, client: GitHubFilesClient) -> None:
    github.add_pull(REPO, 1, [github_file("a.py")])
    await client.list_files(REPO, 1)
    [request] = github.requests
    assert request.path == "/repos/octo/app/pulls/1/files"
    assert request.authorization == "Bearer t0ken"
    assert request.headers["accept"] == "application/vnd.github+json"
    assert request.headers["x-github-api-version"] == "2022-11-28"
    assert request.headers["user-agent"] == USER_AGENT


async def test_no_authorization_without_token(github: FakeGitHub) -> None:
    github.reset(max_per_page=1)
    github.add_pull(REPO, 1, [github_file("a.py"), github_file("b.py")])
    client = client_for(github, None)
    try:
        assert len(await client.list_files(REPO, 1)) == 2
    finally:
        await client.aclose()
    assert github.authorizations == [None, None]


async def test_token_goes_to_every_page(github: FakeGitHub, client: GitHubFilesClient) -> None:
    github.reset(max_per_page=1)
    github.add_pull(REPO, 1, [github_file("a.py"), github_file("b.py"), github_file("c.py")])
    await client.list_files(REPO, 1)
    assert github.authorizations == ["Bearer t0ken"] * 3


async def test_waits_for_rate_limit_reset_then_succeeds(
    github: FakeGitHub, client: GitHubFilesClient
) -> None:
    github.add_pull(REPO, 1, [github_file("a.py")])
    github.rate_limit(0.2)
    started = time.time()
    files = await client.list_files(REPO, 1)
    assert [f.path for f in files] == ["a.py"]
    assert [r.status for r in github.requests] == [403, 200]
    # X-RateLimit-Reset is whole epoch seconds: the client waited until then, not the 60 s
    # a secondary limit would cost (a wide bound: the machine may be busy).
    assert time.time() - started < 30


async def test_rate_limit_longer_than_max_wait_fails_fast(github: FakeGitHub) -> None:
    github.add_pull(REPO, 1, [github_file("a.py")])
    github.rate_limit(120)
    client = client_for(github, "t0ken", max_wait=5)
    started = time.monotonic()
    try:
        with pytest.raises(GitHubError) as info:
            await client.list_files(REPO, 1)
    finally:
        await client.aclose()
    assert time.monotonic() - started < 1
    assert info.value.status == 403
    assert info.value.retryable is True
    assert "rate limited" in str(info.value)
    assert len(github.requests) == 1


async def test_secondary_limit_honours_retry_after(
    github: FakeGitHub, client: GitHubFilesClient
) -> None:
    github.add_pull(REPO, 1, [github_file("a.py")])
    github.secondary_limit(0.1, status=429)
    files = await client.list_files(REPO, 1)
    assert len(files) == 1
    assert [r.status for r in github.requests] == [429, 200]


async def test_one_off_502_is_retried(github: FakeGitHub, client: GitHubFilesClient) -> None:
    github.add_pull(REPO, 1, [github_file("a.py")])
    github.fail_next(502)
    assert len(await client.list_files(REPO, 1)) == 1
    assert [r.status for r in github.requests] == [502, 200]


async def test_persistent_5xx_raises(github: FakeGitHub, client: GitHubFilesClient) -> None:
    github.add_pull(REPO, 1, [github_file("a.py")])
    github.fail_next(503, times=5)
    with pytest.raises(GitHubError) as info:
        await client.list_files(REPO, 1)
    assert str(info.value).startswith("github: 503 listing files of octo/app#1 after 3 attempts")
    assert info.value.retryable is True
    assert len(github.requests) == 3


async def test_not_found_and_forbidden_are_not_retried(
    github: FakeGitHub, client: GitHubFilesClient
) -> None:
    with pytest.raises(GitHubError) as info:
        await client.list_files(REPO, 99)
    assert info.value.status == 404
    assert info.value.retryable is False
    assert str(info.value) == "github: 404 listing files of octo/app#99: Not Found"

    github.add_pull(REPO, 1, [github_file("a.py")])
    github.fail_next(403)  # a 403 without rate-limit headers is a permission problem
    with pytest.raises(GitHubError) as info:
        await client.list_files(REPO, 1)
    assert info.value.status == 403
    assert info.value.retryable is False
    assert len(github.requests) == 2


async def test_patches_are_capped(github: FakeGitHub) -> None:
    long_patch = "@@ -1,0 +1,400 @@\n" + "".join(f"+line number {i}\n" for i in range(400))
    github.add_pull(
        REPO, 1, [github_file("big.py", patch=long_patch), github_file("small.py", patch="+ok")]
    )
    client = client_for(github, None, patch_max_bytes=1000)
    try:
        big, small = await client.list_files(REPO, 1)
    finally:
        await client.aclose()
    assert small.patch == "+ok"
    assert big.patch is not None
    body, marker = big.patch.split("\n… [patch truncated: ")
    assert len(body.encode()) <= 1000
    assert long_patch.startswith(body)
    assert long_patch[len(body)] == "\n"  # cut at the end of a line
    assert marker == f"{len(body.encode())} of {len(long_patch.encode())} bytes shown]"


def test_cap_patch_keeps_utf8_whole() -> None:
    patch = "+" + "é" * 100  # two bytes each, no newline to cut at
    capped = cap_patch(patch, 50)
    capped.encode("utf-8")  # no half character
    assert capped.startswith("+" + "é" * 24)
    assert "[patch truncated: 49 of 201 bytes shown]" in capped
    assert cap_patch("short", 50) == "short"


async def test_stops_at_githubs_page_limit(github: FakeGitHub, client: GitHubFilesClient) -> None:
    github.reset(max_per_page=1)
    github.add_pull(REPO, 1, [github_file(f"f{i}.py") for i in range(MAX_PAGES + 5)])
    files = await client.list_files(REPO, 1)
    assert len(files) == MAX_PAGES
    assert len(github.requests) == MAX_PAGES


async def test_refuses_next_link_to_another_host() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json=[], headers={"Link": '<https://evil.example/steal?page=2>; rel="next"'}
        )

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    client = GitHubFilesClient("https://api.github.com", "t0ken", client=http)
    with pytest.raises(GitHubError, match="another host"):
        await client.list_files(REPO, 1)
    await client.aclose()
    assert not http.is_closed  # a client passed in belongs to the caller
    await http.aclose()


async def test_bad_repository_name(client: GitHubFilesClient) -> None:
    with pytest.raises(GitHubError, match="bad repository name"):
        await client.list_files("../../etc", 1)
