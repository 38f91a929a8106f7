"""Record one delivery: raw event + state upserts + change feed, in one transaction."""

from __future__ import annotations

import asyncio
import enum
import logging
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from flowlens import pipeline, serialize
from flowlens.db import Database, Tx
from flowlens.github.parse import BuildFacts, Delivery, PrFacts, RepoFacts, parse

log = logging.getLogger("flowlens.ingest")

# Columns update_pull_request writes; everything the state rules may change.
_PR_COLUMNS = (
    "github_id", "title", "body", "author", "author_avatar", "head_sha", "head_ref", "base_ref",
    "is_draft", "state", "html_url", "files_changed", "changed_files", "additions", "deletions",
    "status_pr", "status_build", "status_approval", "status_merge", "status", "risk_level",
    "latest_insight", "source_updated_at", "gh_created_at", "gh_updated_at", "merged_at",
    "closed_at",
)  # fmt: skip
_REPO_COLUMNS = (
    "github_id", "full_name", "name", "owner", "owner_avatar", "description", "is_private",
    "default_branch", "language", "stars", "forks", "html_url",
)  # fmt: skip

RETRYABLE = (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected)
# Two first deliveries of one repository at once: both miss it and both insert it; the loser
# can trip over the winner's github_id, which is not insert_repository's ON CONFLICT target.
# The whole transaction runs again and then finds the winner's row.
DELIVERY_RETRYABLE = (*RETRYABLE, psycopg.errors.UniqueViolation)


class Outcome(enum.StrEnum):
    """What became of a delivery."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    PONG = "pong"
    IGNORED = "ignored"


async def retrying(
    func: Any, *args: Any, attempts: int = 5, retry_on: tuple[type[Exception], ...] = RETRYABLE
) -> Any:
    """Run a transaction function again when the database asks us to (serialisation, deadlock)."""
    for attempt in range(attempts):
        try:
            return await func(*args)
        except retry_on:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.01 * 2**attempt)
    raise AssertionError("unreachable")


async def record_delivery(
    db: Database,
    delivery_id: str,
    event: str,
    payload: dict[str, Any],
    raw_json: str,
    *,
    notify: bool = True,
) -> Outcome:
    """Store a verified delivery and everything it changes; a duplicate id changes nothing."""
    facts = parse(event, payload)

    async def run() -> Outcome:
        # Pipelined: statements whose results are not needed yet do not wait for the server,
        # so a delivery costs a few round trips rather than one per statement.
        async with db.transaction(pipeline=True) as tx:
            # The repository row is looked up in the same statement, unless it is not needed.
            lookup = event != "ping" and not facts.ignored and facts.repo is not None
            row = await tx.one(
                "record_raw_event",
                delivery_id=delivery_id,
                event=event,
                action=facts.action,
                repository=facts.repo.full_name if facts.repo else None,
                pr_number=facts.pr_number,
                head_sha=facts.pr.head_sha if facts.pr else None,
                payload=raw_json,
                needs_analysis=facts.needs_analysis,
                github_id=facts.repo.github_id if lookup and facts.repo else None,
                full_name=facts.repo.full_name if lookup and facts.repo else None,
            )
            assert row is not None
            if row.pop("raw_id") is None:
                return Outcome.DUPLICATE
            if event == "ping":
                return Outcome.PONG
            if facts.ignored:
                return Outcome.IGNORED
            await apply_facts(
                tx,
                facts,
                source=event,
                delivery_id=delivery_id,
                notify=notify,
                repository_row=row if row["id"] is not None else None,
                looked_up=True,
            )
            return Outcome.ACCEPTED

    outcome: Outcome = await retrying(run, retry_on=DELIVERY_RETRYABLE)
    return outcome


async def upsert_repository(
    tx: Tx,
    repo: RepoFacts,
    renamed_from: str | None = None,
    *,
    row: dict[str, Any] | None = None,
    looked_up: bool = False,
) -> tuple[int, str]:
    """(id, stored full name); metadata updated only from a payload at least as new as stored.

    With looked_up, `row` is what find_repository returned for this repository (None: unknown).
    """
    if not looked_up:
        row = await tx.one("find_repository", github_id=repo.github_id, full_name=repo.full_name)
    if row is None and renamed_from:
        row = await tx.one("find_repository", github_id=None, full_name=renamed_from)
    params = {c: getattr(repo, c) for c in _REPO_COLUMNS}
    if row is None:
        inserted = await tx.one("insert_repository", source_updated_at=repo.updated_at, **params)
        assert inserted is not None
        return int(inserted["id"]), str(inserted["full_name"])
    if repo.complete and not pipeline.is_stale(row.get("source_updated_at"), repo.updated_at):
        # A payload field that is absent keeps what is stored.
        want = {c: (params[c] if params[c] is not None else row.get(c)) for c in _REPO_COLUMNS}
        if any(want[c] != row.get(c) for c in _REPO_COLUMNS):
            if want["full_name"] != row["full_name"]:
                await _free_name(tx, str(want["full_name"]), int(row["id"]))
            await tx.one(
                "update_repository", id=row["id"], source_updated_at=repo.updated_at, **want
            )
            return int(row["id"]), str(want["full_name"])
    await tx.send("touch_repository", id=row["id"])
    # An older payload may carry an old name: clients see the stored one, as REST shows it.
    return int(row["id"]), str(row["full_name"])


async def _free_name(tx: Tx, full_name: str, repo_id: int) -> None:
    """Make `full_name` free for repository repo_id (a rename or transfer onto it)."""
    holder = await tx.one("repository_holding_name", full_name=full_name, id=repo_id)
    if holder is None:
        return
    if holder["github_id"] is None:
        await tx.execute("merge_repository", into=repo_id, **{"from": holder["id"]})
        await tx.execute("delete_repository", id=holder["id"])
    else:
        await tx.execute("rename_repository_away", id=holder["id"])


async def upsert_build(tx: Tx, repository_id: int, build: BuildFacts) -> None:
    """Insert or advance a build row (never backwards)."""
    await tx.one(
        "upsert_build",
        repository_id=repository_id,
        provider=build.provider,
        external_id=build.external_id,
        workflow_name=build.workflow_name,
        status=build.status,
        conclusion=build.conclusion,
        branch=build.branch,
        commit_sha=build.commit_sha,
        pr_number=build.pr_numbers[0] if build.pr_numbers else None,
        triggered_by=build.triggered_by,
        url=build.url,
        started_at=build.started_at,
        finished_at=build.finished_at,
        duration_seconds=build.duration_seconds,
        source_updated_at=build.updated_at,
    )


async def apply_facts(
    tx: Tx,
    facts: Delivery,
    *,
    source: str,
    delivery_id: str | None,
    notify: bool,
    repository_row: dict[str, Any] | None = None,
    looked_up: bool = False,
) -> list[int]:
    """Apply a delivery's facts inside tx; returns the PR numbers whose visible state changed.

    With looked_up, `repository_row` is find_repository's answer for facts.repo.
    """
    if facts.repo is None:
        for extra in facts.extra_repos:
            await upsert_repository(tx, extra)
        return []
    repo_id, repo_name = await upsert_repository(
        tx, facts.repo, facts.renamed_from, row=repository_row, looked_up=looked_up
    )
    touched: dict[int, PrFacts | None] = {}
    if facts.pr is not None:
        touched[facts.pr.number] = facts.pr
    for build in facts.builds:
        await upsert_build(tx, repo_id, build)
        for ref in build.pr_refs:
            touched.setdefault(ref.number, ref)
        if build.commit_sha:
            for row in await tx.all("prs_by_head_sha", repository_id=repo_id, sha=build.commit_sha):
                touched.setdefault(row["number"], None)
    changed: list[int] = []
    # Sorted, so two transactions touching the same PRs lock them in the same order.
    for number in sorted(touched):
        if await update_pr(
            tx,
            repo_id,
            repo_name,
            number,
            touched[number],
            facts,
            source=source,
            delivery_id=delivery_id,
            notify=notify,
        ):
            changed.append(number)
    return changed


async def update_pr(
    tx: Tx,
    repo_id: int,
    repository: str,
    number: int,
    pr_facts: PrFacts | None,
    facts: Delivery | None,
    *,
    source: str,
    delivery_id: str | None,
    notify: bool,
) -> bool:
    """Lock one PR, apply facts, re-derive its state, and announce a visible change."""
    await tx.send("ensure_pull_request", repository_id=repo_id, number=number)
    row = await tx.one("lock_pull_request", repository_id=repo_id, number=number)
    assert row is not None
    new = pipeline.apply_pr_facts(row, pr_facts) if pr_facts is not None else dict(row)
    if facts is not None and facts.review is not None and facts.review.pr_number == number:
        review = facts.review
        await tx.send(
            "upsert_review",
            pull_request_id=row["id"],
            review_id=review.review_id,
            reviewer=review.reviewer,
            state=review.state,
            commit_sha=review.commit_sha,
            submitted_at=review.submitted_at,
        )
    checks = await tx.all(
        "pr_checks",
        repository_id=repo_id,
        sha=new.get("head_sha") or None,
        pull_request_id=row["id"],
    )
    statuses = [r["state"] for r in checks if r["kind"] == "build"]
    approvals = [r["state"] for r in checks if r["kind"] == "review"]
    pipeline.finish(new, statuses, approvals)
    return await save_pr(
        tx, row, new, repository, source=source, delivery_id=delivery_id, notify=notify
    )


async def save_pr(
    tx: Tx,
    row: dict[str, Any],
    new: dict[str, Any],
    repository: str,
    *,
    source: str,
    delivery_id: str | None,
    notify: bool,
    kind: str = "pr",
) -> bool:
    """Write a locked PR row; bump version, history and feed when clients would see it."""
    visible = pipeline.visible_changed(row, new)
    if not visible and all(row.get(c) == new.get(c) for c in _PR_COLUMNS):
        return False
    params = {c: new.get(c) for c in _PR_COLUMNS}
    params["files_changed"] = Jsonb(list(new.get("files_changed") or []))
    insight = new.get("latest_insight")
    params["latest_insight"] = Jsonb(insight) if insight is not None else None
    saved = await tx.one("update_pull_request", id=row["id"], bump=1 if visible else 0, **params)
    assert saved is not None
    if not visible:
        return False
    await tx.send(
        "record_pr_change",
        pull_request_id=saved["id"],
        version=saved["version"],
        status_pr=saved["status_pr"],
        status_build=saved["status_build"],
        status_approval=saved["status_approval"],
        status_merge=saved["status_merge"],
        status=saved["status"],
        source_event=source,
        delivery_id=delivery_id,
        repository=repository,
        pr_number=saved["number"],
        kind=kind,
        payload=Jsonb(serialize.pr_update(saved, repository)),
        notify=notify,
    )
    return True
