"""The pull request as FlowLens keeps and shows it, declared once: its status vocabularies and
its fields (column, public name, whether clients see it, whether a delivery writes it).

Python derives from here: the state rules' visible columns (flowlens.pipeline), the columns a
delivery writes (flowlens.ingest.store), the API's types (flowlens.api.schemas). SQL and
migrations stay hand-written; tests/unit/test_pr_model.py proves they, the serializer and the
API schema agree with this declaration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

StatusPr = Literal["opened", "updated", "closed"]
StatusBuild = Literal["pending", "building", "buildPassed", "buildFailed"]
StatusApproval = Literal["pending", "approved", "changes_requested"]
StatusMerge = Literal["pending", "merged", "closed"]
# The one status clients show, derived by priority (pipeline.derive_status).
PrStatus = Literal["pending", "building", "buildPassed", "buildFailed", "approved", "merged",
                   "closed"]  # fmt: skip
PrState = Literal["open", "closed", "merged"]
Risk = Literal["low", "medium", "high"]

STATUS_PR: tuple[str, ...] = get_args(StatusPr)
STATUS_BUILD: tuple[str, ...] = get_args(StatusBuild)
STATUS_APPROVAL: tuple[str, ...] = get_args(StatusApproval)
STATUS_MERGE: tuple[str, ...] = get_args(StatusMerge)
STATUS: tuple[str, ...] = get_args(PrStatus)
PR_STATE: tuple[str, ...] = get_args(PrState)
RISK: tuple[str, ...] = get_args(Risk)


@dataclass(frozen=True)
class PrField:
    """One column of pull_requests: its name in a /api/prs item (None: not in it; a dotted
    name is inside an object), whether clients see it (a change to it is announced), whether
    a delivery writes it."""

    column: str
    api: str | None
    visible: bool = True
    written: bool = True


PR_FIELDS: tuple[PrField, ...] = (
    PrField("number", "number", written=False),
    PrField("github_id", None, visible=False),
    PrField("title", "title"),
    PrField("body", "description"),
    PrField("author", "author"),
    PrField("author_avatar", "authorAvatar"),
    PrField("head_sha", "commitSha"),
    PrField("gh_created_at", "createdAt"),
    PrField("gh_updated_at", "updatedAt"),
    PrField("status", "status"),
    PrField("files_changed", "filesChanged"),
    PrField("changed_files", None),
    PrField("additions", "additions"),
    PrField("deletions", "deletions"),
    PrField("head_ref", "branchName"),
    PrField("base_ref", "baseBranch"),
    PrField("is_draft", "isDraft"),
    PrField("state", "state"),
    PrField("html_url", "url"),
    PrField("status_pr", "pipelineStatus.statusPr"),
    PrField("status_build", "pipelineStatus.statusBuild"),
    PrField("status_approval", "pipelineStatus.statusApproval"),
    PrField("status_merge", "pipelineStatus.statusMerge"),
    PrField("risk_level", "riskLevel"),
    PrField("latest_insight", None),
    PrField("source_updated_at", None, visible=False),
    PrField("merged_at", None, visible=False),
    PrField("closed_at", None, visible=False),
)
# The item's one field that is not the PR's own: its repository's name (a join).
REPOSITORY_FIELD = "repositoryName"

# Columns of a PR row clients see; a change to any of them is announced.
VISIBLE_COLUMNS: tuple[str, ...] = tuple(f.column for f in PR_FIELDS if f.visible and f.written)
# Columns a delivery writes (ingest_update_pull_requests).
WRITTEN_COLUMNS: tuple[str, ...] = tuple(f.column for f in PR_FIELDS if f.written)
# Columns a /api/prs item is made of.
ITEM_COLUMNS: tuple[str, ...] = tuple(f.column for f in PR_FIELDS if f.api is not None)
# The item's top-level names.
ITEM_FIELDS: tuple[str, ...] = (
    *dict.fromkeys(f.api.split(".")[0] for f in PR_FIELDS if f.api is not None),
    REPOSITORY_FIELD,
)
