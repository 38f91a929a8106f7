"""What happened after an analysed head, read from later changes (pure).

Reverts: a change whose title starts with "Revert" names what it reverts by sha (git's own
"This reverts commit <sha>." line, or a sha of 7+ hex digits in the title) or by pull request
("#123", GitHub's "Reverts owner/repo#123"). Follow-ups: a later change touching the same files
within FOLLOW_UP_DAYS (from the kept history, flowlens.risk.history).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from flowlens.risk.history import History

FOLLOW_UP_DAYS = 14
_REVERT_TITLE = re.compile(r"^\s*revert\b", re.IGNORECASE)
_SHA = re.compile(r"\b[0-9a-f]{7,40}\b")
_REVERTS_COMMIT = re.compile(r"\breverts? commit ([0-9a-f]{7,40})\b", re.IGNORECASE)
_PR = re.compile(r"(?:^|[\s(])(?:([\w.-]+/[\w.-]+))?#(\d{1,9})\b")


def commit_reverts(message: str, repository: str) -> RevertTargets | None:
    """What one pushed commit (its whole message) reverts in `repository` (owner/name)."""
    title, _, body = message.partition("\n")
    return revert_targets(title, body, repository, numbers_in_title=False)


@dataclass(frozen=True)
class RevertTargets:
    shas: list[str]
    numbers: list[int]


def revert_targets(title: str, body: str, repository: str, *, numbers_in_title: bool = True
                   ) -> RevertTargets | None:  # fmt: skip
    """What a change in `repository` (owner/name) reverts, or None when it is not a revert
    (or names nothing of this repository).

    A PR named with another repository (`Reverts other/repo#4`) is not this repository's #4.
    A pushed commit's title may end with the number of the revert PR that was squash-merged
    (`Revert "x" (#13)`), so for pushes (`numbers_in_title=False`) only the body's
    `Reverts owner/repo#N` line names a PR.
    """
    if not _REVERT_TITLE.match(title):
        return None

    def ours(text: str) -> set[int]:
        return {int(n) for repo, n in _PR.findall(text)
                if not repo or repo.lower() == repository.lower()}  # fmt: skip

    shas = set(_SHA.findall(title.lower())) | set(_REVERTS_COMMIT.findall(body.lower()))
    numbers = ours(title) if numbers_in_title else set()
    numbers |= {n for line in body.splitlines() if line.lower().startswith("reverts ")
                for n in ours(line)}  # fmt: skip
    if not shas and not numbers:
        return None
    return RevertTargets(sorted(shas), sorted(numbers))


def followed_up(history: History, at: datetime, own: str) -> list[str]:
    """The earlier changes (keys) this change follows up: they touched one of its files at
    most FOLLOW_UP_DAYS before `at`."""
    since = at - timedelta(days=FOLLOW_UP_DAYS)
    return sorted({h.last_change for h in history.files.values()
                   if h.last_change and h.last_change != own and h.last_at is not None
                   and h.last_at >= since})  # fmt: skip
