"""The risk read in the poller: kept history, the model's score and drivers stored, outcomes
recorded after each analysed head (a follow-up of its files, a revert), with the real GitHub
files client against a local fake."""

from __future__ import annotations

from typing import Any

from flowlens.db import Database
from flowlens.insights import GitHubFilesClient
from flowlens.poller.worker import Poller
from tests.conftest import load_fixture
from tests.fakes import FakeGitHub, github_file
from tests.fakes.fake_gemini import FakeGemini, Reply
from tests.helpers import variant
from tests.integration.test_poller import REPO, CountingAnalyser, deliver, pr_delivery, settings


def pr(number: int, sha: str, minute: int, **fields: Any) -> dict[str, Any]:
    payload = pr_delivery(number, sha, "opened", minute)
    return variant(payload, **{f"pull_request.{k}": v for k, v in fields.items()})


async def analyse_all(db: Database, github: FakeGitHub, analyser: CountingAnalyser) -> None:
    assert github.url is not None
    files = GitHubFilesClient(github.url, None, retry_delay=0.01)
    try:
        await Poller(db, settings(), analyser, files).scan_once()
    finally:
        await files.aclose()


async def outcomes(db: Database) -> dict[tuple[int, str], str]:
    async with db.transaction() as tx:
        cur = await tx.conn.execute(
            "SELECT i.pr_number, o.outcome, o.detail FROM insight_outcomes o "
            "JOIN insights i ON i.id = o.insight_id"
        )
        return {(r["pr_number"], r["outcome"]): r["detail"] for r in await cur.fetchall()}


async def test_history_scores_and_outcomes_through_the_poller(
    db: Database, github: FakeGitHub
) -> None:
    github.add_pull(REPO, 1, [github_file("src/a.py", additions=120, deletions=4),
                              github_file("src/b.py", additions=30)])  # fmt: skip
    github.add_pull(REPO, 2, [github_file("src/a.py", additions=5, deletions=1)])
    github.add_pull(REPO, 3, [github_file("docs/x.md", additions=1)])
    github.add_pull(REPO, 4, [github_file("src/a.py", additions=100, deletions=5)])
    analyser = CountingAnalyser()
    await deliver(db, "pull_request", pr(1, "a" * 40, 0), "d1")
    await analyse_all(db, github, analyser)
    # A later PR touching src/a.py follows PR 1 up.
    await deliver(db, "pull_request", pr(2, "b" * 40, 1, title="Fix a.py edge case"), "d2")
    await analyse_all(db, github, analyser)
    # A revert of PR 1, named the way GitHub's revert button names it, and of PR 2's head by sha.
    await deliver(db, "pull_request",
                  pr(3, "c" * 40, 2, title='Revert "PR 1 at 0"', body=f"Reverts {REPO}#1"),
                  "d3")  # fmt: skip
    await deliver(db, "pull_request", pr(4, "d" * 40, 3, title=f"Revert {'b' * 12}", body=""),
                  "d4")  # fmt: skip
    await analyse_all(db, github, analyser)

    assert await outcomes(db) == {
        (1, "follow_up"): "#2",  # PR 2 and later PR 4 touched src/a.py: the first is kept
        (1, "reverted"): "#3",
        (2, "reverted"): "#4",
        (2, "follow_up"): "#4",
    }
    async with db.transaction() as tx:
        cur = await tx.conn.execute(
            "SELECT pr_number, risk_score, risk_drivers, summary FROM insights ORDER BY pr_number"
        )
        rows = await cur.fetchall()
        cur = await tx.conn.execute("SELECT path, changes, authors FROM risk_files ORDER BY path")
        files = [tuple(r.values()) for r in await cur.fetchall()]
        cur = await tx.conn.execute("SELECT author, changes FROM risk_authors")
        authors = [tuple(r.values()) for r in await cur.fetchall()]
        cur = await tx.conn.execute("SELECT number, id FROM pull_requests")
        pr_ids = {r["number"]: r["id"] for r in await cur.fetchall()}
    assert files == [("docs/x.md", 1, 1), ("src/a.py", 3, 1), ("src/b.py", 1, 1)]
    assert authors == [("Codertocat", 4)]
    for r in rows:
        assert 0 <= r["risk_score"] <= 1
        assert r["risk_drivers"] and {"feature", "label", "value", "contribution"} == set(
            r["risk_drivers"][0]
        )
        assert f"defect probability {r['risk_score']:.2f}" in r["summary"]
    # Each PR is scored on the history before it: PR 1 on none, PR 2 on PR 1's src/a.py, PR 4
    # on both (PR 3 and 4 share a scan, so PR 4 may or may not see PR 3's author count).
    seen = {c.pr_number: c.history for c in analyser.contexts}
    assert seen[1].author_changes == 0 and seen[1].files == {}
    assert seen[2].author_changes == 1 and seen[2].files["src/a.py"].changes == 1
    assert seen[2].files["src/a.py"].last_change == f"pr:{pr_ids[1]}"
    assert seen[4].files["src/a.py"].changes == 2 and seen[4].author_changes in (2, 3)
    assert "src/b.py" not in seen[4].files


async def test_a_pushed_revert_commit_marks_the_head_it_names(
    db: Database, github: FakeGitHub
) -> None:
    analyser = CountingAnalyser()
    github.add_pull(REPO, 5, [github_file("src/c.py", additions=8)])
    await deliver(db, "pull_request", pr(5, "e" * 40, 0), "p1")
    await deliver(db, "pull_request", pr(6, "9" * 40, 0), "p2")
    await analyse_all(db, github, analyser)
    commit = {
        "id": "1" * 40, "tree_id": "2" * 40, "distinct": True,
        "message": f'Revert "PR 5 at 0" (#7)\n\nThis reverts commit {"e" * 40}.',
        "timestamp": "2019-05-15T16:00:00Z", "url": "https://github.com/x",
        "author": {"name": "Codertocat", "email": "c@example.com", "username": "Codertocat"},
        "committer": {"name": "GitHub", "email": "noreply@github.com", "username": "web-flow"},
        "added": [], "removed": [], "modified": ["src/c.py"],
    }  # fmt: skip
    # Not a revert: a commit that only mentions reverting.
    other = dict(commit, id="3" * 40, message=f"Add revert button for {'9' * 40}")
    push = variant(load_fixture("push/payload.json"), ref="refs/heads/master",
                   commits=[other, commit])  # fmt: skip
    # The same revert on a side branch has undone nothing yet.
    await deliver(db, "push", variant(push, ref="refs/heads/try-revert"), "p0")
    await analyse_all(db, github, analyser)
    assert await outcomes(db) == {}
    await deliver(db, "push", push, "p3")
    await analyse_all(db, github, analyser)
    assert await outcomes(db) == {(5, "reverted"): f"push {'1' * 12}"}


async def test_with_gemini_the_stored_insight_keeps_both_answers(
    db: Database, github: FakeGitHub
) -> None:
    from flowlens.insights.gemini import GeminiAnalyser

    github.add_pull(REPO, 8, [github_file("src/x.py", additions=3)])
    await deliver(db, "pull_request", pr(8, "8" * 40, 0), "g1")
    gemini = FakeGemini(default=Reply.answer(risk_level="high", confidence_score=0.9,
                                             summary="Gemini says high."))  # fmt: skip
    assert github.url is not None
    files = GitHubFilesClient(github.url, None, retry_delay=0.01)
    with gemini.running() as url:
        analyser = GeminiAnalyser("k", "gemini-test", timeout_seconds=5, max_attempts=1,
                                  base_url=url)  # fmt: skip
        try:
            await Poller(db, settings(), analyser, files).scan_once()
        finally:
            await analyser.aclose()
            await files.aclose()
    async with db.transaction() as tx:
        [row] = await tx.all("insights_for_pr", repository=REPO, number=8)
    assert row["risk_level"] == "high" and row["model"] == "gemini-test"
    assert row["confidence_score"] == 0.9
    # The model's read of the same head, kept beside Gemini's answer and sent to it.
    assert row["risk_score"] < 0.5 and row["risk_drivers"]
    assert row["summary"].startswith("Gemini says high.\n\nFlowLens model: low risk")
    assert f"defect probability {row['risk_score']:.2f}" in gemini.calls[0].prompt
