"""What the risk model reads from one change: Kamei et al.'s change metrics and kept history.

Kamei, Shihab, Adams, Hassan, Mockus, Sinha, Ubayashi, "A large-scale empirical study of
just-in-time quality assurance", IEEE TSE 39(6), 2013: size (LA, LD), diffusion (NF, ND, NS,
entropy), purpose (FIX), history (NUC, NDEV, AGE) and experience (EXP).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath

from flowlens.risk.history import History

# Generated files, left out of the line counts (a lock file's churn says nothing of risk).
LOCK_FILES = frozenset({
    "package-lock.json", "yarn.lock", "pnpm-lock.yaml", "poetry.lock", "pipfile.lock", "uv.lock",
    "go.sum", "cargo.lock", "gemfile.lock", "composer.lock", "pubspec.lock", "packages.lock.json",
})  # fmt: skip

# Kamei's FIX: the message names a fix. Words as in Mockus & Votta (2000) and later JIT work.
_FIX = re.compile(r"\b(fix(e[sd])?|bugs?|defects?|patch(es)?|fault|crash(es)?|regression|"
                  r"issue|error|incorrect|broken|npe|wrong|hotfix)\b", re.IGNORECASE)  # fmt: skip

SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class FileLines:
    """One changed file as the model sees it."""

    path: str
    additions: int
    deletions: int


@dataclass(frozen=True)
class Features:
    """The raw measurements of one change, before the model's transforms."""

    la: int  # lines added
    ld: int  # lines deleted
    nf: int  # files
    nd: int  # directories
    ns: int  # subsystems (top-level folders)
    entropy: float  # spread of the changed lines over the files, 0..1
    fix: bool  # the title names a fix
    exp: int  # the author's earlier changes in this repository
    nuc: int  # earlier changes of the touched files, summed over them
    ndev: int  # most distinct earlier authors of one touched file
    age_days: float  # mean days since each touched file's last change (files with history)
    unseen: float  # share of touched files FlowLens has never seen changed, 0..1

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.__dict__.items()}


def is_lock_file(path: str) -> bool:
    return PurePosixPath(path.lower()).name in LOCK_FILES


def subsystem(path: str) -> str:
    """Kamei's subsystem: the top-level folder ('' for a file at the root)."""
    head, sep, _ = path.partition("/")
    return head if sep else ""


def names_a_fix(title: str) -> bool:
    return bool(_FIX.search(title))


def entropy(lines: list[int]) -> float:
    """Shannon entropy of the changed lines over the files, normalised by its maximum."""
    total = sum(lines)
    if total <= 0 or len(lines) < 2:
        return 0.0
    h = -sum((n / total) * math.log2(n / total) for n in lines if n > 0)
    return h / math.log2(len(lines))


def measure(
    files: list[FileLines],
    title: str,
    history: History,
    at: datetime,
    *,
    additions: int = 0,
    deletions: int = 0,
) -> Features:
    """The features of a change; `additions`/`deletions` serve when the file list is unknown."""
    counted = [f for f in files if not is_lock_file(f.path)]
    if files:
        la = sum(f.additions for f in counted)
        ld = sum(f.deletions for f in counted)
    else:
        la, ld = additions, deletions
    paths = [f.path for f in files]
    known = [history.files[p] for p in paths if p in history.files]
    seen = [h for h in known if h.changes > 0]
    ages = [max(0.0, (at - h.last_at).total_seconds()) / SECONDS_PER_DAY
            for h in seen if h.last_at is not None]  # fmt: skip
    return Features(
        la=la,
        ld=ld,
        nf=len(paths),
        nd=len({str(PurePosixPath(p).parent) for p in paths}),
        ns=len({subsystem(p) for p in paths}),
        entropy=entropy([f.additions + f.deletions for f in counted]),
        fix=names_a_fix(title),
        exp=history.author_changes,
        nuc=sum(h.changes for h in seen),
        ndev=max((h.authors for h in seen), default=0),
        age_days=sum(ages) / len(ages) if ages else 0.0,
        unseen=(len(paths) - len(seen)) / len(paths) if paths else 0.0,
    )
