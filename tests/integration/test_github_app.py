"""GitHub App mode against a local fake GitHub that verifies what it receives: the App's JWT
(with the App's public key), installation tokens (exchanged, cached, refreshed, renewed after a
401), and the check-run / status client's handling of rate limits, server errors and timeouts."""

from __future__ import annotations

import time
from collections.abc import Iterator

import jwt
import pytest

from flowlens.github.app import JWT_BACKDATE, REFRESH_BEFORE, AppTokens, StaticToken, app_jwt
from flowlens.github.checks import ChecksClient, Shown, conclusion, dashboard_link
from flowlens.github.rest import GitHubError
from flowlens.insights import GitHubFilesClient
from tests.fakes import github_file
from tests.fakes.fake_github_app import CheckRun, FakeGitHubApp, rsa_key_pair

REPO = "octo/app"
SHA = "a" * 40
DONE = Shown("completed", "neutral", "Low risk", "summary", "text", None)
STARTED = Shown("in_progress", None, "Reading", "analysing", "", None)


@pytest.fixture
def fake() -> Iterator[FakeGitHubApp]:
    app = FakeGitHubApp()
    app.install(42, REPO)
    with app.running():
        yield app


def tokens_for(fake: FakeGitHubApp, known: dict[str, int] | None = None,
               key: str | None = None) -> AppTokens:  # fmt: skip
    """App tokens as the product builds them, with a dict standing in for the database."""
    installations = known if known is not None else {REPO: 42}

    async def installation_of(repository: str) -> int | None:
        return installations.get(repository)

    async def remember(repository: str, installation: int) -> None:
        installations[repository] = installation

    assert fake.url is not None
    return AppTokens(fake.url, fake.app_id, key or fake.private_pem, installation_of,
                     remember=remember)  # fmt: skip


def test_the_app_jwt_is_rs256_verifiable_with_the_public_key_only() -> None:
    private, public = rsa_key_pair()
    now = time.time()
    token = app_jwt(77, private, now=now)
    claims = jwt.decode(token, public, algorithms=["RS256"])
    assert claims["iss"] == "77"
    assert claims["iat"] == int(now) - JWT_BACKDATE  # set back for clock drift
    assert claims["exp"] - claims["iat"] <= 600 and claims["exp"] > now
    _, other_public = rsa_key_pair()
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, other_public, algorithms=["RS256"])


def test_a_private_key_that_is_not_one_is_a_clear_permanent_error() -> None:
    with pytest.raises(GitHubError) as caught:
        app_jwt(77, "-----BEGIN RSA PRIVATE KEY-----\nnope\n-----END RSA PRIVATE KEY-----")
    assert "GITHUB_APP_PRIVATE_KEY is not a usable RSA key" in str(caught.value)
    assert caught.value.retryable is False


async def test_an_installation_token_is_exchanged_once_and_reused(fake: FakeGitHubApp) -> None:
    tokens = tokens_for(fake)
    try:
        first = await tokens.authorization(REPO)
        second = await tokens.authorization(REPO)
    finally:
        await tokens.aclose()
    assert first == second and first is not None and first.startswith("Bearer ghs_")
    exchanges = fake.calls("POST", "/app/installations/42/access_tokens")
    assert len(exchanges) == 1 and exchanges[0].status == 201
    # The fake verified the JWT with the App's public key; its claims are GitHub's.
    assert [str(c["iss"]) for c in fake.jwt_claims] == [str(fake.app_id)]
    assert exchanges[0].headers["x-github-api-version"] == "2022-11-28"


async def test_a_token_close_to_expiry_is_exchanged_anew(fake: FakeGitHubApp) -> None:
    fake.token_lifetime = REFRESH_BEFORE - 60  # every token is already "about to expire"
    tokens = tokens_for(fake)
    try:
        first = await tokens.authorization(REPO)
        second = await tokens.authorization(REPO)
    finally:
        await tokens.aclose()
    assert first != second and tokens.exchanges == 2


async def test_a_repository_not_yet_known_is_looked_up_once_and_remembered(
    fake: FakeGitHubApp,
) -> None:
    fake.install(7, "octo/other")
    known: dict[str, int] = {}
    tokens = tokens_for(fake, known)
    try:
        await tokens.authorization("octo/other")
        await tokens.authorization("octo/other")
    finally:
        await tokens.aclose()
    assert known == {"octo/other": 7}
    assert len(fake.calls("GET", "/repos/octo/other/installation")) == 1
    assert len(fake.calls("POST", "/app/installations/7/access_tokens")) == 1


async def test_a_jwt_signed_with_another_key_is_refused_for_good(fake: FakeGitHubApp) -> None:
    other, _ = rsa_key_pair()
    tokens = tokens_for(fake, key=other)
    try:
        with pytest.raises(GitHubError) as caught:
            await tokens.authorization(REPO)
    finally:
        await tokens.aclose()
    assert caught.value.status == 401 and caught.value.retryable is False
    assert "github app: 401" in str(caught.value) and fake.jwt_claims == []


async def test_the_files_client_uses_the_installation_token(fake: FakeGitHubApp) -> None:
    fake.files.add_pull(REPO, 3, [github_file("src/a.py", additions=4)])
    tokens = tokens_for(fake)
    assert fake.url is not None
    files = GitHubFilesClient(fake.url, None, tokens=tokens, retry_delay=0.01)
    try:
        listed = await files.list_files(REPO, 3)
        fake.tokens.clear()  # GitHub revoked it: a 401, then a fresh token, then the files
        again = await files.list_files(REPO, 3)
    finally:
        await files.aclose()
        await tokens.aclose()
    assert [f.path for f in listed] == [f.path for f in again] == ["src/a.py"]
    statuses = [r.status for r in fake.calls("GET", "/pulls/3/files")]
    assert statuses == [200, 401, 200] and tokens.exchanges == 2


async def test_check_runs_are_created_once_then_updated_in_place(fake: FakeGitHubApp) -> None:
    tokens = tokens_for(fake)
    assert fake.url is not None
    client = ChecksClient(fake.url, tokens)
    try:
        assert await client.find_check_run(REPO, SHA) is None
        run_id = await client.put_check_run(REPO, SHA, STARTED, None)
        assert await client.find_check_run(REPO, SHA) == run_id
        assert await client.put_check_run(REPO, SHA, DONE, run_id) == run_id
    finally:
        await client.aclose()
        await tokens.aclose()
    (run,) = fake.runs_for(REPO, SHA)
    assert run.name == "FlowLens risk" and run.history == ["in_progress", "completed"]
    assert run.conclusion == "neutral" and run.output["title"] == "Low risk"


async def test_a_check_run_needs_an_installation_that_covers_the_repository(
    fake: FakeGitHubApp,
) -> None:
    assert fake.url is not None
    client = ChecksClient(fake.url, StaticToken("a-personal-token"))
    try:
        with pytest.raises(GitHubError) as caught:
            await client.put_check_run(REPO, SHA, STARTED, None)
    finally:
        await client.aclose()
    assert caught.value.status == 401 and caught.value.retryable is False


async def test_the_primary_rate_limit_pauses_the_client_until_its_reset(
    fake: FakeGitHubApp,
) -> None:
    tokens = tokens_for(fake)
    await tokens.authorization(REPO)  # the token first: the exchange is not rate limited here
    fake.rate_limit(30)
    assert fake.url is not None
    client = ChecksClient(fake.url, tokens)
    try:
        with pytest.raises(GitHubError) as caught:
            await client.put_status(REPO, SHA, DONE)
        sent = len(fake.requests)
        with pytest.raises(GitHubError) as again:
            await client.put_status(REPO, SHA, DONE)
    finally:
        await client.aclose()
        await tokens.aclose()
    assert caught.value.retryable and caught.value.retry_after is not None
    assert 25 < caught.value.retry_after <= 31
    # Paused: the second send did not reach GitHub, and says when it may.
    assert len(fake.requests) == sent and again.value.retry_after is not None
    assert client.paused_until >= time.time() + 25


@pytest.mark.parametrize(
    ("fault", "retry_after", "expected"),
    [("secondary", 7.0, "403"), ("status", None, "502"), ("hang", None, "timed out")],
)
async def test_secondary_limits_server_errors_and_timeouts_are_retryable(
    fake: FakeGitHubApp, fault: str, retry_after: float | None, expected: str
) -> None:
    tokens = tokens_for(fake)
    await tokens.authorization(REPO)
    if fault == "secondary":
        fake.secondary_limit(7)
    elif fault == "status":
        fake.fail_next(502)
    else:
        fake.hang_next(1.0)
    assert fake.url is not None
    client = ChecksClient(fake.url, tokens, timeout_seconds=0.3)
    try:
        with pytest.raises(GitHubError) as caught:
            await client.put_check_run(REPO, SHA, STARTED, None)
        # Nothing was created by the failed send; the next one goes through.
        assert fake.runs_for(REPO, SHA) == []
        await client.put_check_run(REPO, SHA, STARTED, None)
    finally:
        await client.aclose()
        await tokens.aclose()
    assert caught.value.retryable and expected in str(caught.value)
    assert caught.value.retry_after == retry_after
    assert len(fake.runs_for(REPO, SHA)) == 1


async def test_only_this_apps_check_run_counts_as_flowlens_own(fake: FakeGitHubApp) -> None:
    """A check run of the same name made by another App (a staging FlowLens) is not ours."""
    fake.check_runs[1] = CheckRun(1, REPO, SHA, "FlowLens risk", "completed", "success", {},
                                  None, app_id=999)  # fmt: skip
    tokens = tokens_for(fake)
    assert fake.url is not None
    mine = ChecksClient(fake.url, tokens, app_id=fake.app_id)
    anyones = ChecksClient(fake.url, tokens)
    try:
        assert await mine.find_check_run(REPO, SHA) is None
        assert await anyones.find_check_run(REPO, SHA) == 1
    finally:
        await mine.aclose()
        await anyones.aclose()
        await tokens.aclose()


@pytest.mark.parametrize(
    ("level", "gate", "expected"),
    [
        ("low", "off", "neutral"), ("high", "off", "neutral"), (None, "high", "neutral"),
        ("low", "medium", "success"), ("medium", "medium", "failure"),
        ("high", "medium", "failure"), ("medium", "high", "success"), ("high", "high", "failure"),
    ],
)  # fmt: skip
def test_the_quality_gate(level: str | None, gate: str, expected: str) -> None:
    assert conclusion(level, gate) == expected


def test_the_dashboard_link() -> None:
    assert dashboard_link("", REPO, 4) is None
    # The fragment is the card's id as the dashboard writes it (view.js cardId, idSafe).
    assert dashboard_link("https://flowlens.example/", "o-1/r.x", 4) == (
        "https://flowlens.example/?repo=o-1/r.x#pr-o-1_002fr_002ex-4"
    )
