"""Repository names: GitHub's owner/name, and the name a repository keeps once another took
its own (docs/ARCHITECTURE.md, repository identity)."""

from __future__ import annotations

import re

# "owner/name (previous, id 12)": the stored repository 12 gave its name up to a newer
# claim; "… (previous, GitHub id 34)": a late delivery's repository whose claim is the older.
_PREVIOUS = r" \(previous, (GitHub )?id [0-9]+\)"
# GitHub's owner/name, or one of those (a name may be given up more than once).
REPO_NAME = re.compile(rf"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(?:{_PREVIOUS})*")


def previous_name(full_name: str, *, id: int | None = None, github_id: int | None = None) -> str:
    """The name a repository keeps when it gives `full_name` up: by its row id, or by its
    GitHub id when it has no row yet."""
    if (id is None) == (github_id is None):
        raise ValueError("previous_name takes id or github_id")
    which = f"id {id}" if id is not None else f"GitHub id {github_id}"
    return f"{full_name} (previous, {which})"
