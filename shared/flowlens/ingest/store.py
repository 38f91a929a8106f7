"""Record one delivery: raw event + state upserts + change feed, in one transaction."""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import psycopg
import pydantic_core

from flowlens import dora, pipeline, serialize
from flowlens.db import ConnectionLost, Database, DatabaseUnavailable, Tx, first_line
from flowlens.db.codec import pack_payload, unpack_payload
from flowlens.github.parse import (
    BuildFacts,
    Delivery,
    PayloadError,
    PrFacts,
    load_payload,
    parse,
)
from flowlens.ingest.identity import upsert_repository
from flowlens.installations import apply_installation
from flowlens.model import WRITTEN_COLUMNS
from flowlens.retry import DELIVERY_RETRYABLE, retrying

log = logging.getLogger("flowlens.ingest")

# Columns a delivery writes (ingest_update_pull_requests): the model's (flowlens.model).
_PR_COLUMNS = WRITTEN_COLUMNS

# Columns that can be long (a PR template, hundreds of paths, an insight): update_pull_requests
# leaves them as stored unless they changed, so the database keeps their TOASTed values rather
# than writing them again for every build or review (bench/long_columns.py: lone deliveries to
# PRs with a 4 KB body, 300 paths and an insight took 0.84x as long and wrote 19% less WAL).
_KEPT_UNLESS_CHANGED = ("body", "files_changed", "latest_insight")

# repositories.last_activity is kept to this resolution: a row updated by every delivery would
# serialise ingest on it.
ACTIVITY_EVERY = timedelta(seconds=5)

# Seconds the retry after a lost connection waits for another one.
RETRY_CHECKOUT = 1.0


class Outcome(enum.StrEnum):
    """What became of a delivery."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    PONG = "pong"
    IGNORED = "ignored"
    # Stored whole, not applied: a field of a type or range FlowLens does not take (yet).
    UNAPPLIED = "unapplied"


@dataclass(frozen=True)
class Item:
    """One verified delivery, parsed."""

    delivery_id: str
    event: str
    facts: Delivery
    raw_json: str


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
    item = Item(delivery_id, event, parse(event, payload), raw_json)
    return (await record_deliveries(db, [item], notify=notify))[0]


async def record_deliveries(
    db: Database, items: list[Item], *, notify: bool = True, checkout: float | None = None
) -> list[Outcome]:
    """Store deliveries in one transaction, each as if alone and in list order.

    Everything commits together or nothing does; a serialisation failure or deadlock runs the
    whole transaction again. `checkout`: seconds to wait for a connection (default: the
    pool's timeout).
    """

    async def run(checkout: float | None = None) -> list[Outcome]:
        # Pipelined: statements whose results are not needed yet do not wait for the server.
        async with db.transaction(pipeline=True, checkout=checkout) as tx:
            session = Session(tx, notify=notify)
            outcomes = await _record(session, items)
            await session.flush()
            return outcomes

    try:
        outcomes: list[Outcome] = await retrying(run, checkout, retry_on=DELIVERY_RETRYABLE)
    except ConnectionLost as exc:
        # GitHub does not send a failed delivery again by itself, so one more try on a fresh
        # connection: whatever did not commit was rolled back, and a COMMIT that did leaves
        # its raw events behind, so the retry finds them and changes nothing (duplicate).
        # The pool's checkout check finds connections the server closed; a database that is
        # down does not get the pool's full wait twice (GitHub gives up after 10 s).
        log.warning("the database connection was lost (%s); trying once more", exc)
        outcomes = await retrying(run, RETRY_CHECKOUT, retry_on=DELIVERY_RETRYABLE)
    return outcomes


async def record_unapplied(
    db: Database, delivery_id: str, event: str, raw_json: str, action: str | None, reason: str
) -> Outcome:
    """Keep a delivery that cannot be applied whole, with the reason (UNAPPLIED), or nothing
    when its id is known (DUPLICATE). Nothing of it is applied."""

    async def run() -> Outcome:
        async with db.transaction() as tx:
            row = await tx.one(
                "ingest_record_unapplied_event",
                delivery_id=delivery_id,
                event=event,
                action=action if isinstance(action, str) else None,
                payload=pack_payload(raw_json),
                reason=reason[:1000],
            )
        return Outcome.UNAPPLIED if row is not None else Outcome.DUPLICATE

    result: Outcome = await retrying(run)
    return result


@dataclass(frozen=True)
class Reapplied:
    """What `reapply_unapplied` did: the event ids applied now, and those still not, why."""

    applied: list[int]
    still: list[tuple[int, str]]


async def reapply_unapplied(
    db: Database, event_id: int | None = None, *, notify: bool = True
) -> Reapplied:
    """Apply stored unapplied deliveries (one, or all) with today's code, each in its own
    transaction, in the order they arrived; one that still does not fit keeps its new reason."""
    async with db.transaction() as tx:
        ids = [row["id"] for row in await tx.all("admin_list_unapplied_events", limit=1_000_000)]
    if event_id is not None:
        ids = [i for i in ids if i == event_id]
    applied: list[int] = []
    still: list[tuple[int, str]] = []
    for rid in ids:
        try:
            if await _reapply_one(db, rid, notify=notify):
                applied.append(rid)
        except DatabaseUnavailable:
            raise
        except Exception as exc:  # any row that still does not fit must not block the rest
            reason = str(exc) if isinstance(exc, PayloadError) else f"{type(exc).__name__}: "
            if not isinstance(exc, PayloadError):
                reason += first_line(exc) if isinstance(exc, psycopg.Error) else str(exc)
            async with db.transaction() as tx:
                await tx.execute("admin_still_unapplied", id=rid, reason=reason[:1000])
            still.append((rid, reason))
    return Reapplied(applied, still)


async def _reapply_one(db: Database, event_id: int, *, notify: bool) -> bool:
    """Apply one unapplied delivery; False when it is gone or another run took it."""

    async def run() -> bool:
        async with db.transaction() as tx:
            rows = await tx.all("admin_unapplied_events_for_update", id=event_id)
            if not rows:
                return False
            row = rows[0]
            facts = parse(row["event"], load_payload(unpack_payload(row["payload"])))
            session = Session(tx, notify=notify)
            if not facts.ignored and row["event"] != "ping":
                await apply_facts(
                    session, facts, source=row["event"], delivery_id=row["delivery_id"]
                )
            await session.flush()
            repo = facts.repo
            await tx.execute(
                "admin_mark_reapplied",
                id=event_id,
                action=facts.action,
                repository=repo.full_name if repo else None,
                pr_number=facts.pr_number,
                head_sha=facts.pr.head_sha if facts.pr else None,
                needs_analysis=facts.needs_analysis,
                repository_github_id=repo.github_id if repo else None,
            )
            return True

    result: bool = await retrying(run, retry_on=DELIVERY_RETRYABLE)
    return result


async def _record(session: Session, items: list[Item]) -> list[Outcome]:
    outcomes: list[Outcome | None] = [None] * len(items)
    first: dict[str, int] = {}
    for i, item in enumerate(items):
        if item.delivery_id in first:
            outcomes[i] = Outcome.DUPLICATE
        else:
            first[item.delivery_id] = i
    fresh = [items[i] for i in first.values()]
    # Sent before the raw events' answer is read: one round trip for both.
    await session.look_up_repositories(
        [(it.facts.repo.github_id, it.facts.repo.full_name) for it in fresh if it.facts.repo]
    )
    rows = await session.tx.all(
        "ingest_record_raw_events",
        delivery_ids=[it.delivery_id for it in fresh],
        events=[it.event for it in fresh],
        actions=[it.facts.action for it in fresh],
        repositories=[it.facts.repo.full_name if it.facts.repo else None for it in fresh],
        pr_numbers=[it.facts.pr_number for it in fresh],
        head_shas=[it.facts.pr.head_sha if it.facts.pr else None for it in fresh],
        payloads=[pack_payload(it.raw_json) for it in fresh],
        needs_analysis=[it.facts.needs_analysis for it in fresh],
        repository_github_ids=[it.facts.repo.github_id if it.facts.repo else None for it in fresh],
    )
    inserted = {row["delivery_id"] for row in rows}
    if rows:
        session.now = rows[0]["received_at"]  # now(): the transaction's timestamp
    accepted: list[Item] = []
    for item in fresh:
        i = first[item.delivery_id]
        if item.delivery_id not in inserted:
            outcomes[i] = Outcome.DUPLICATE
        elif item.event == "ping":
            outcomes[i] = Outcome.PONG
        elif item.facts.ignored:
            outcomes[i] = Outcome.IGNORED
        else:
            outcomes[i] = Outcome.ACCEPTED
            accepted.append(item)
    await session.prefetch_prs(accepted)
    for item in accepted:
        await apply_facts(session, item.facts, source=item.event, delivery_id=item.delivery_id)
    assert all(o is not None for o in outcomes)
    return cast("list[Outcome]", outcomes)


@dataclass
class _Change:
    row: dict[str, Any]  # the PR row as this change left it; updated_at is set at flush
    source: str
    delivery_id: str | None
    repository: str
    kind: str


class Session:
    """One transaction's view of the state it writes: rows it has read or locked, and the
    history and feed rows it still has to write (flush).

    Deliveries applied through one session behave as if each ran alone, in order: a cached row
    is always what the database would now return to this transaction.
    """

    def __init__(self, tx: Tx, *, notify: bool) -> None:
        self.tx = tx
        self.notify = notify
        self._repos_by_gid: dict[int, dict[str, Any]] = {}
        self._repos_by_name: dict[str, dict[str, Any]] = {}
        self._looked_up: set[tuple[int | None, str]] = set()
        self._pending_repos: Any = None
        self._touched: dict[int, datetime | None] = {}  # repository id -> activity read
        self._prs: dict[tuple[int, int], dict[str, Any]] = {}
        self._stored: dict[int, dict[str, Any]] = {}  # PR id -> the row as the database has it
        self._checks: dict[tuple[int, int, str | None], list[dict[str, Any]]] = {}
        self._dirty: dict[int, dict[str, Any]] = {}  # PR id -> row to write
        self._bumped: set[int] = set()
        # now() in this transaction (what updated_at = now() writes), once known.
        self.now: datetime | None = None
        self._changes: list[_Change] = []
        # (repository id, provider, external id) -> build id, of the builds this session wrote;
        # None where an older report left the stored build alone.
        self.builds: dict[tuple[int, str, str], int | None] = {}

    # -- repositories

    async def look_up_repositories(self, keys: list[tuple[int | None, str]]) -> None:
        """Ask for the rows of (GitHub id, full name) keys; the answer is read when needed, so
        this costs no round trip of its own."""
        await self._read_pending_repos()
        wanted = set(keys) - self._looked_up
        if not wanted:
            return
        self._pending_repos = await self.tx.start(
            "ingest_find_repositories",
            github_ids=[g for g, _ in wanted if g is not None],
            full_names=[n for _, n in wanted],
        )
        self._looked_up |= wanted

    async def _read_pending_repos(self) -> None:
        cursor, self._pending_repos = self._pending_repos, None
        if cursor is not None:
            for row in await cursor.fetchall():
                self._cache_repo(row)

    def _cache_repo(self, row: dict[str, Any]) -> None:
        if row["github_id"] is not None:
            self._repos_by_gid[row["github_id"]] = row
        self._repos_by_name[row["full_name"]] = row

    async def repository(self, github_id: int | None, full_name: str) -> dict[str, Any] | None:
        """The row a GitHub id (preferred) or full name refers to, or None. A row under the
        name with another GitHub id is another repository (one deleted and created again)."""
        await self._read_pending_repos()
        if (github_id, full_name) not in self._looked_up:
            await self.look_up_repositories([(github_id, full_name)])
            await self._read_pending_repos()
        if github_id is not None and github_id in self._repos_by_gid:
            return self._repos_by_gid[github_id]
        row = self._repos_by_name.get(full_name)
        if row is not None and None not in (github_id, row["github_id"]):
            return None
        return row

    def touch(self, repo: dict[str, Any]) -> None:
        """Mark activity on a repository row read in this transaction (written at flush, once
        per transaction, and only when the row's last_activity is ACTIVITY_EVERY old)."""
        self._touched[int(repo["id"])] = repo.get("last_activity")

    def wrote_repository(self, *, moved_prs: bool = False) -> None:
        """After an insert, rename or merge: the next lookup asks the database."""
        self._repos_by_gid.clear()
        self._repos_by_name.clear()
        self._looked_up.clear()
        if moved_prs:
            self._prs.clear()
            self._stored.clear()
            self._checks.clear()

    # -- pull requests

    async def prefetch_prs(self, items: list[Item]) -> None:
        """Lock the PRs these deliveries name and read their checks: one round trip."""
        keys: set[tuple[int, int]] = set()
        heads: set[tuple[int, int, str | None]] = set()
        for item in items:
            facts = item.facts
            if facts.repo is None or facts.pr is None or facts.renamed_from:
                continue
            repo = await self.repository(facts.repo.github_id, facts.repo.full_name)
            if repo is not None:
                keys.add((int(repo["id"]), facts.pr.number))
                # The head the PR will most likely have: the payload's (an older payload keeps
                # the stored one, read on demand).
                heads.add((int(repo["id"]), facts.pr.number, facts.pr.head_sha))
        locking = await self._send_lock(keys)
        checking = await self._send_checks(list(heads))
        await self._read_lock(locking)
        await self._read_checks(checking)

    async def _send_lock(self, keys: set[tuple[int, int]]) -> Any:
        missing = sorted(k for k in keys if k not in self._prs)
        if not missing:
            return None
        arrays = {"repository_ids": [k[0] for k in missing], "numbers": [k[1] for k in missing]}
        await self.tx.send("ingest_ensure_pull_requests", **arrays)
        return await self.tx.start("ingest_lock_pull_requests", **arrays)

    async def _read_lock(self, cursor: Any) -> None:
        if cursor is not None:
            for row in await cursor.fetchall():
                self._prs[(row["repository_id"], row["number"])] = row
                self._stored[int(row["id"])] = row

    async def locked_pr(self, repo_id: int, number: int) -> dict[str, Any]:
        """The PR's row, created if new, locked for the rest of the transaction."""
        await self._read_lock(await self._send_lock({(repo_id, number)}))
        return self._prs[(repo_id, number)]

    async def _send_checks(self, keys: list[tuple[int, int, str | None]]) -> Any:
        keys = [k for k in keys if k not in self._checks]
        if not keys:
            return None
        for key in keys:
            self._checks[key] = []
        return await self.tx.start(
            "ingest_pr_checks",
            repository_ids=[k[0] for k in keys],
            numbers=[k[1] for k in keys],
            shas=[k[2] for k in keys],
        )

    async def _read_checks(self, cursor: Any) -> None:
        if cursor is not None:
            for row in await cursor.fetchall():
                self._checks[(row["repository_id"], row["number"], row["sha"])].append(row)

    async def checks(self, repo_id: int, number: int, sha: str | None) -> list[dict[str, Any]]:
        """Build states of the sha and the latest deciding reviews of the PR (which exists)."""
        await self._read_checks(await self._send_checks([(repo_id, number, sha)]))
        return self._checks[(repo_id, number, sha)]

    def wrote_checks(self) -> None:
        """A build or review was written: checks are read again."""
        self._checks.clear()

    async def save_pr(
        self,
        row: dict[str, Any],
        new: dict[str, Any],
        repository: str,
        *,
        source: str,
        delivery_id: str | None,
        kind: str = "pr",
        announce: bool = False,
    ) -> bool:
        """Save a locked PR row (written at flush); a visible change (or `announce`: one
        outside the row, such as its repository's new name) bumps its version and gets a
        history and a feed row."""
        visible = announce or pipeline.visible_changed(row, new)
        if not visible and all(row.get(c) == new.get(c) for c in _PR_COLUMNS):
            return False
        saved = {**row, **{c: new.get(c) for c in _PR_COLUMNS}}
        saved["version"] = row["version"] + (1 if visible else 0)
        self._dirty[int(row["id"])] = saved
        key = (row["repository_id"], row["number"])
        if key in self._prs:
            self._prs[key] = saved
        if visible:
            self._bumped.add(int(row["id"]))
            self._changes.append(_Change(dict(saved), source, delivery_id, repository, kind))
        return visible

    async def lock_repository_prs(self, repo_id: int) -> list[dict[str, Any]]:
        """Every PR of a repository, locked in number order (before its repository row is
        written: the order every delivery takes them in, so no deadlock)."""
        await self.write_prs()  # the rows read are then what this session holds
        rows = await self.tx.all("ingest_lock_repository_prs", repository_id=repo_id)
        for row in rows:
            self._prs[(repo_id, row["number"])] = row
            self._stored[int(row["id"])] = row
        return rows

    async def announce_repository(
        self, rows: list[dict[str, Any]], repository: str, *, source: str,
        delivery_id: str | None,
    ) -> None:  # fmt: skip
        """A repository renamed or moved: each of its PRs (locked by lock_repository_prs) is
        announced under the new name, so connected clients replace their rows."""
        for row in rows:
            held = self._prs.get((row["repository_id"], row["number"]), row)
            await self.save_pr(
                held, held, repository, source=source, delivery_id=delivery_id, announce=True
            )

    async def write_prs(self) -> None:
        """Write the saved PR rows now (before a statement reads pull_requests itself)."""
        if not self._dirty:
            return
        rows = []
        for pr_id, row in self._dirty.items():
            sent: dict[str, Any] = {"id": pr_id, "bumped": pr_id in self._bumped}
            sent.update((c, row.get(c)) for c in _PR_WRITTEN)
            stored = self._stored.get(pr_id)
            for column in _KEPT_UNLESS_CHANGED:
                kept = stored is not None and stored.get(column) == row.get(column)
                sent[f"keep_{column}"] = kept
                if kept:
                    sent[column] = None
            rows.append(sent)
            self._stored[pr_id] = row
        ids = list(self._dirty)
        bumped, self._bumped = self._bumped, set()
        self._dirty.clear()
        if self.now is not None:
            await self.tx.send("ingest_update_pull_requests", ids=ids, rows=_json(rows))
            return
        for written in await self.tx.all("ingest_update_pull_requests", ids=ids, rows=_json(rows)):
            if written["id"] in bumped:
                self.now = written["updated_at"]

    async def flush(self) -> None:
        """Write everything saved: PR rows, history and feed rows, repository activity."""
        await self.write_prs()
        # Skip the statement when every row read shows recent activity: its WHERE would match
        # none of them (a row another transaction touched since is newer still).
        due = sorted(
            repo_id
            for repo_id, seen in self._touched.items()
            if seen is None or self.now is None or seen < self.now - ACTIVITY_EVERY
        )
        self._touched.clear()
        if due:
            await self.tx.send("ingest_touch_repositories", ids=due, every=ACTIVITY_EVERY)
        if not self._changes:
            return
        changes = []
        for change in self._changes:
            saved = change.row
            saved["updated_at"] = self.now
            changes.append(
                {
                    "pull_request_id": saved["id"],
                    "version": saved["version"],
                    "status_pr": saved["status_pr"],
                    "status_build": saved["status_build"],
                    "status_approval": saved["status_approval"],
                    "status_merge": saved["status_merge"],
                    "status": saved["status"],
                    "source_event": change.source,
                    "delivery_id": change.delivery_id,
                    "repository_id": saved["repository_id"],
                    "repository": change.repository,
                    "pr_number": saved["number"],
                    "kind": change.kind,
                    "payload": serialize.pr_update(saved, change.repository),
                }
            )
        self._changes.clear()
        await self.tx.send("ingest_record_pr_changes", changes=_json(changes), notify=self.notify)


_PR_WRITTEN = (*_PR_COLUMNS, "version")


def _json(value: Any) -> str:
    """JSON text for a json parameter (timestamps as ISO 8601, which PostgreSQL reads back)."""
    return pydantic_core.to_json(value).decode()


def _only(numbers: list[int] | None) -> int | None:
    return numbers[0] if numbers and len(numbers) == 1 else None


async def upsert_build(
    session: Session, repository_id: int, build: BuildFacts, linked: list[int] | None = None
) -> None:
    """Insert or advance a build row (never backwards). Its PR is the first it names, else the
    one PR whose head is its commit (`linked`), so /api/builds shows a fork's run, a job or a
    commit status with its PR too."""
    row = await session.tx.one(
        "ingest_upsert_build",
        repository_id=repository_id,
        provider=build.provider,
        external_id=build.external_id,
        workflow_name=build.workflow_name,
        status=build.status,
        conclusion=build.conclusion,
        branch=build.branch,
        commit_sha=build.commit_sha,
        pr_number=build.pr_numbers[0] if build.pr_numbers else _only(linked),
        triggered_by=build.triggered_by,
        url=build.url,
        started_at=build.started_at,
        finished_at=build.finished_at,
        duration_seconds=build.duration_seconds,
        source_updated_at=build.updated_at,
        rerun_key=build.rerun_key,
    )
    session.builds[(repository_id, build.provider, build.external_id)] = row["id"] if row else None
    session.wrote_checks()


async def apply_facts(
    session: Session, facts: Delivery, *, source: str, delivery_id: str | None
) -> list[int]:
    """Apply a delivery's facts; returns the PR numbers whose visible state changed."""
    tx = session.tx
    if facts.repo is None:
        for extra in facts.extra_repos:
            await upsert_repository(session, extra, source=source, delivery_id=delivery_id)
        if facts.installation is not None:
            await apply_installation(tx, facts.installation)
        return []
    repo_id, repo_name = await upsert_repository(
        session, facts.repo, facts.renamed_from, source=source, delivery_id=delivery_id
    )
    if facts.dora is not None:
        await dora.apply(tx, repo_id, facts.dora)
    touched: dict[int, PrFacts | None] = {}
    if facts.pr is not None:
        touched[facts.pr.number] = facts.pr
    for build in facts.builds:
        linked: list[int] = []
        if build.commit_sha:
            await session.write_prs()  # head shas saved in this transaction count
            rows = await tx.all(
                "ingest_prs_by_head_sha", repository_id=repo_id, sha=build.commit_sha
            )
            linked = [row["number"] for row in rows]
        await upsert_build(session, repo_id, build, linked)
        for ref in build.pr_refs:
            touched.setdefault(ref.number, ref)
        for number in linked:
            touched.setdefault(number, None)
    changed: list[int] = []
    # Sorted, so two transactions touching the same PRs lock them in the same order.
    for number in sorted(touched):
        if await update_pr(
            session, repo_id, repo_name, number, touched[number], facts,
            source=source, delivery_id=delivery_id,
        ):  # fmt: skip
            changed.append(number)
    return changed


async def update_pr(
    session: Session,
    repo_id: int,
    repository: str,
    number: int,
    pr_facts: PrFacts | None,
    facts: Delivery | None,
    *,
    source: str,
    delivery_id: str | None,
) -> bool:
    """Lock one PR, apply facts, re-derive its state, and announce a visible change."""
    row = await session.locked_pr(repo_id, number)
    new = pipeline.apply_pr_facts(row, pr_facts) if pr_facts is not None else dict(row)
    if facts is not None and new.get("source_updated_at") is None:
        # Known only from builds so far (no pull_request payload): its activity is theirs,
        # so it lists by it among the others (updatedAt) instead of after all of them.
        seen = [b.updated_at for b in facts.builds if b.updated_at is not None]
        if seen and (new.get("gh_updated_at") is None or max(seen) > new["gh_updated_at"]):
            new["gh_updated_at"] = max(seen)
    if facts is not None and facts.review is not None and facts.review.pr_number == number:
        review = facts.review
        await session.tx.send(
            "ingest_upsert_review",
            pull_request_id=row["id"],
            review_id=review.review_id,
            reviewer=review.reviewer,
            state=review.state,
            commit_sha=review.commit_sha,
            submitted_at=review.submitted_at,
        )
        session.wrote_checks()
    checks = await session.checks(repo_id, number, new.get("head_sha") or None)
    statuses = [r["state"] for r in checks if r["kind"] == "build"]
    approvals = [r["state"] for r in checks if r["kind"] == "review"]
    pipeline.finish(new, statuses, approvals)
    return await session.save_pr(row, new, repository, source=source, delivery_id=delivery_id)


async def save_pr_now(
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
    """Save one locked PR row outside a delivery (insights, tools): Session.save_pr + flush."""
    session = Session(tx, notify=notify)
    changed = await session.save_pr(
        row, new, repository, source=source, delivery_id=delivery_id, kind=kind
    )
    await session.flush()
    return changed
