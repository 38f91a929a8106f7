"""Repository identity: which stored repository a payload's repository is, and who holds a
name (GitHub's names are unique at any one time, and case-insensitive; ids are forever)."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

from flowlens import pipeline
from flowlens.github.parse import RepoFacts
from flowlens.names import previous_name

if TYPE_CHECKING:
    from flowlens.ingest.store import Session

# Columns that follow the name: kept together when a payload's new name is not taken.
NAME_COLUMNS = ("full_name", "name", "owner", "html_url")
REPO_COLUMNS = (
    "github_id", "full_name", "name", "owner", "owner_avatar", "description", "is_private",
    "default_branch", "language", "stars", "forks", "html_url",
)  # fmt: skip


class NameClaim(enum.Enum):
    """What making a payload's name free for its repository came to."""

    FREE = "free"  # nobody held it, or another GitHub repository did and gave it up
    MERGED = "merged"  # a placeholder (a repository known only by name) joined this one
    HELD = "held"  # another repository's claim is newer: this one keeps what it has


async def upsert_repository(
    session: Session,
    repo: RepoFacts,
    renamed_from: str | None = None,
    *,
    source: str,
    delivery_id: str | None,
) -> tuple[int, str]:
    """(id, stored full name); metadata updated only from a payload at least as new as stored.

    A new name (a rename or a transfer, whatever event shows it first) is announced for every
    PR of the repository."""
    tx = session.tx
    row = await session.repository(repo.github_id, repo.full_name)
    if row is None and renamed_from:
        row = await session.repository(repo.github_id, renamed_from)
    params = {c: getattr(repo, c) for c in REPO_COLUMNS}
    if row is None and repo.github_id is None:
        # A report without a GitHub id (the CI path) naming a stored repository in another
        # letter case means that repository: GitHub's names ignore case.
        holder = await tx.one("ingest_repository_holding_name", full_name=repo.full_name, id=None)
        if holder is not None:
            session.touch(holder)
            return int(holder["id"]), str(holder["full_name"])
    if row is None:
        claim = await _free_name(session, repo, None, source=source, delivery_id=delivery_id)
        if claim is NameClaim.HELD:
            # Another GitHub repository claimed the name later than this payload shows it.
            params["full_name"] = previous_name(repo.full_name, github_id=repo.github_id)
        inserted = await tx.one(
            "ingest_insert_repository", source_updated_at=repo.updated_at, **params
        )
        assert inserted is not None
        session.wrote_repository()
        return int(inserted["id"]), str(inserted["full_name"])
    if repo.complete and not pipeline.is_stale(row.get("source_updated_at"), repo.updated_at):
        # A payload field that is absent keeps what is stored; one set to null clears it.
        want = {
            c: params[c] if params[c] is not None or c in repo.cleared else row.get(c)
            for c in REPO_COLUMNS
        }
        repo_id = int(row["id"])
        if want["full_name"] != row["full_name"] and _claims(
            await tx.one("ingest_repository_holding_name", full_name=repo.full_name, id=repo_id),
            repo,
        ):  # a late payload of a name another repository took since: keep the stored one
            want.update((c, row.get(c)) for c in NAME_COLUMNS)
        if any(want[c] != row.get(c) for c in REPO_COLUMNS):
            renamed = want["full_name"] != row["full_name"]
            merged = False
            locked: list[dict[str, Any]] = []
            if renamed:
                # Its PRs before the repository row (and pending PR rows written first: a
                # merge moves PR rows in SQL).
                locked = await session.lock_repository_prs(repo_id)
                freed = await _free_name(
                    session, repo, repo_id, source=source, delivery_id=delivery_id
                )
                if freed is NameClaim.HELD:  # claimed meanwhile by another transaction
                    want.update((c, row.get(c)) for c in NAME_COLUMNS)
                    renamed = False
                merged = freed is NameClaim.MERGED
            full_name = str(want["full_name"])
            await tx.one(
                "ingest_update_repository", id=row["id"], source_updated_at=repo.updated_at, **want
            )
            session.wrote_repository(moved_prs=merged)
            if renamed:
                if merged:  # the placeholder's PRs are this repository's now too
                    locked = await session.lock_repository_prs(repo_id)
                await session.announce_repository(
                    locked, full_name, source=source, delivery_id=delivery_id
                )
            return repo_id, full_name
    session.touch(row)
    # An older payload may carry an old name: clients see the stored one, as REST shows it.
    return int(row["id"]), str(row["full_name"])


def _claims(holder: dict[str, Any] | None, repo: RepoFacts) -> bool:
    """Whether another GitHub repository's claim on the name is at least as new as repo's
    payload (GitHub's names are unique at any one time: the newer claim is the live one)."""
    if holder is None or holder["github_id"] is None:
        return False
    claimed = holder["source_updated_at"]
    return claimed is not None and (repo.updated_at is None or repo.updated_at <= claimed)


async def _free_name(
    session: Session, repo: RepoFacts, repo_id: int | None, *, source: str,
    delivery_id: str | None,
) -> NameClaim:  # fmt: skip
    """Make repo's name free for it (repository repo_id, or a new one): FREE (nobody held
    it, in any letter case, or another GitHub repository did, whose rows keep their PRs
    under a name that frees it, announced there), MERGED (a placeholder's rows joined
    repo_id) or HELD (another repository's claim is newer, `_claims`)."""
    tx = session.tx
    merged = False
    for _ in range(4):
        holder = await tx.one(
            "ingest_repository_holding_name", full_name=repo.full_name, id=repo_id
        )
        if holder is None:
            break
        if holder["github_id"] is None:
            if repo_id is None:  # a new repository: insert_repository adopts the placeholder
                break
            await tx.execute("ingest_merge_repository", into=repo_id, **{"from": holder["id"]})
            await tx.execute("ingest_delete_repository", id=holder["id"])
            merged = True
            continue
        if _claims(holder, repo):
            return NameClaim.HELD
        locked = await session.lock_repository_prs(int(holder["id"]))  # PRs first, as above
        # Only under the name read: a transaction that moved it meanwhile must not move it
        # twice (two first deliveries of a repository created again, at two instances).
        moved = await tx.one(
            "ingest_rename_repository_away",
            id=holder["id"],
            full_name=holder["full_name"],
            new_name=previous_name(str(holder["full_name"]), id=int(holder["id"])),
        )
        session.wrote_repository()
        if moved is not None:
            await session.announce_repository(locked, str(moved["full_name"]),
                                              source=source, delivery_id=delivery_id)  # fmt: skip
    else:
        return NameClaim.HELD  # the name kept changing hands: keep what is stored this time
    return NameClaim.MERGED if merged else NameClaim.FREE
