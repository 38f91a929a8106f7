"""What an analyser reads (a change) and what it answers (a validated insight)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, SkipValidation

from flowlens.risk.history import History

RiskLevel = Literal["low", "medium", "high"]
CiState = Literal["pending", "building", "buildPassed", "buildFailed"]

MAX_KEY_CHANGES = 5
# Generous bounds: they only exist so a runaway answer cannot bloat a stored row.
MAX_TEXT_CHARS = 4000
MAX_KEY_CHANGE_CHARS = 500


class FileChange(BaseModel):
    """One file of a pull request, as GitHub's pulls/{n}/files API lists it."""

    model_config = ConfigDict(frozen=True)

    path: str
    status: str
    additions: int = Field(ge=0)
    deletions: int = Field(ge=0)
    patch: str | None = None
    previous_path: str | None = None


class ChangeContext(BaseModel):
    """Everything an analyser may look at for one commit of one pull request."""

    model_config = ConfigDict(frozen=True)

    repository: str
    pr_number: int
    title: str
    body: str
    branch: str
    base_branch: str
    author: str
    head_sha: str
    ci_state: CiState
    files: list[FileChange]
    additions: int = Field(ge=0)
    deletions: int = Field(ge=0)
    # What FlowLens's kept history says of the author and the files (flowlens.risk.history),
    # and when the change is scored (the file ages are measured to it; None: now).
    history: SkipValidation[History] = Field(default_factory=History)
    at: datetime | None = None


class Driver(BaseModel):
    """One term of the risk model's score: its measured value and its log-odds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    feature: str = Field(min_length=1, max_length=40)
    label: str = Field(min_length=1, max_length=120)
    value: float = Field(allow_inf_nan=False)
    contribution: float = Field(allow_inf_nan=False)


MAX_DRIVERS = 5


class Insight(BaseModel):
    """A validated risk assessment of one commit; the only shape that gets stored."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    risk_level: RiskLevel
    summary: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    recommendation: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    key_changes: list[str] = Field(default_factory=list, max_length=MAX_KEY_CHANGES)
    confidence_score: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    model: str = Field(min_length=1)
    # The built-in model's probability and top drivers; kept beside Gemini's answer too.
    risk_score: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    drivers: list[Driver] = Field(default_factory=list, max_length=MAX_DRIVERS)


class AnalysisError(Exception):
    """An analysis that produced no insight; `retryable` says whether trying later may help."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        # Seconds the service asked us to wait (a 429's RetryInfo), for the next attempt.
        self.retry_after = retry_after


class Analyser(Protocol):
    """Turns a change into an insight (Gemini or the built-in risk model)."""

    name: str

    async def analyse(self, ctx: ChangeContext) -> Insight:
        """Assess one change; raise AnalysisError when no valid insight can be produced."""
        ...


def ground_key_changes(items: list[str], files: list[FileChange]) -> list[str]:
    """Keep the key changes that start with a path in the change, as `path: what changed`."""
    known = {f.path for f in files} | {f.previous_path for f in files if f.previous_path}
    # Longest first, so `src/a.py.bak` is not mistaken for `src/a.py`.
    paths = sorted(known, key=len, reverse=True)
    kept: list[str] = []
    for item in items:
        text = item.strip().lstrip("-*• ").strip()
        for path in paths:
            rest = _after_path(text, path)
            if rest is not None:
                what = rest.strip()
                if what:
                    kept.append(f"{path}: {what}")
                break
    return kept


def _after_path(text: str, path: str) -> str | None:
    """What follows `path:` (or a quoted path) at the start of text, else None."""
    for quoted in (path, f"`{path}`", f'"{path}"', f"'{path}'"):
        if text.startswith(quoted):
            rest = text[len(quoted) :].lstrip()
            if rest.startswith(":"):
                return rest[1:]
    return None
