"""The pull-request model (flowlens.model) is the one declaration: the database schema, the SQL
column lists, the serializer and the API schema agree with it, and a field added in one place
and forgotten in another fails here."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from typing import Any, get_args

from flowlens import model, pipeline, serialize
from flowlens.api import schemas
from flowlens.db.schema import EXPECTED_TABLES
from flowlens.db.sql import QUERIES
from flowlens.model import PR_FIELDS, PrField

# The queries that read a PR for its /api/prs item, and the one that writes a delivery's PRs.
LIST_QUERIES = ("api_list_prs", "api_list_repository_prs", "api_pr")
WRITE_QUERY = "ingest_update_pull_requests"


def row_of(fields: tuple[PrField, ...]) -> dict[str, Any]:
    """A PR row with a value in every column the fields name."""
    sample: dict[str, Any] = {"files_changed": ["a.py"], "is_draft": True, "state": "open"}
    row: dict[str, Any] = {}
    for f in fields:
        if f.column.endswith("_at"):
            row[f.column] = datetime(2026, 1, 1, tzinfo=UTC)
        elif f.column in sample:
            row[f.column] = sample[f.column]
        elif f.column in ("number", "additions", "deletions", "changed_files", "github_id"):
            row[f.column] = 3
        else:
            row[f.column] = f"{f.column}-value"
    return row


def problems(fields: tuple[PrField, ...]) -> list[str]:
    """Where the code disagrees with a declaration of the PR's fields."""
    found: list[str] = []
    table = EXPECTED_TABLES["pull_requests"]
    found += [f"schema lacks {f.column}" for f in fields if f.column not in table]
    with_api = [f for f in fields if f.api is not None]
    for name in LIST_QUERIES:
        selected = QUERIES[name]
        found += [
            f"{name} does not select {f.column}"
            for f in with_api
            if not re.search(rf"\bp\.{f.column}\b", selected)
        ]
    written = QUERIES[WRITE_QUERY]
    found += [
        f"{WRITE_QUERY} does not write {f.column}"
        for f in fields
        if f.written and not re.search(rf"\b{f.column} = ", written)
    ]
    item = serialize.pr_item(row_of(fields), "o/r", full=True)
    top = {f.api.split(".")[0] for f in with_api} | {model.REPOSITORY_FIELD}
    if set(item) != top:
        found.append(f"serializer's item {sorted(set(item) ^ top)} differ")
    if set(schemas.PullRequest.model_fields) != top:
        found.append(f"API schema's {sorted(set(schemas.PullRequest.model_fields) ^ top)} differ")
    for f in with_api:
        if "." in f.api:
            outer, inner = f.api.split(".")
            if inner not in item.get(outer, {}):
                found.append(f"serializer's {outer} lacks {inner}")
            if inner not in schemas.PipelineStatus.model_fields:
                found.append(f"API schema's {outer} lacks {inner}")
    return found


def test_everything_agrees_with_the_model() -> None:
    assert problems(PR_FIELDS) == []


def test_a_field_declared_and_forgotten_elsewhere_fails() -> None:
    forgotten = (*PR_FIELDS, PrField("reviewers", "reviewers"))
    found = problems(forgotten)
    assert "schema lacks reviewers" in found
    assert any("api_list_prs does not select reviewers" in p for p in found)
    assert any("ingest_update_pull_requests does not write reviewers" in p for p in found)
    assert any("serializer" in p for p in found) and any("API schema" in p for p in found)
    renamed = tuple(
        dataclasses.replace(f, api="descriptionText") if f.column == "body" else f
        for f in PR_FIELDS
    )
    assert any("descriptionText" in p for p in problems(renamed))


def test_python_takes_its_vocabularies_and_columns_from_the_model() -> None:
    assert pipeline.VISIBLE is model.VISIBLE_COLUMNS
    assert (pipeline.STATUS_PR, pipeline.STATUS_BUILD, pipeline.STATUS) == (
        model.STATUS_PR, model.STATUS_BUILD, model.STATUS,
    )  # fmt: skip
    assert schemas.PrStatus is model.PrStatus and schemas.Risk is model.Risk
    assert get_args(schemas.PipelineStatus.model_fields["statusBuild"].annotation) == (
        model.STATUS_BUILD
    )
    from flowlens.ingest import store

    assert store._PR_COLUMNS is model.WRITTEN_COLUMNS


def test_the_schema_checks_the_vocabularies() -> None:
    """The database's CHECKs name the same words (migration 001, as written)."""
    from importlib import resources

    initial = resources.files("flowlens.db").joinpath("migrations/001_initial.sql").read_text()
    for column, words in (("status_pr", model.STATUS_PR), ("status_build", model.STATUS_BUILD),
                          ("status_approval", model.STATUS_APPROVAL),
                          ("status_merge", model.STATUS_MERGE), ("status", model.STATUS),
                          ("state", model.PR_STATE)):  # fmt: skip
        check = re.search(
            rf"\b{column}\s+TEXT NOT NULL DEFAULT '\w+'\s+CHECK \({column} IN \(([^)]*)\)", initial
        )
        assert check is not None, column
        assert tuple(re.findall(r"'(\w+)'", check.group(1))) == words, column
